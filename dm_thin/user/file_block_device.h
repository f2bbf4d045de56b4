/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A metadata device in an image file (userspace only): what thin_check,
 * thin_dump and thin_restore read and write, so our images and theirs are
 * exchanged through it. flush() is fdatasync().
 */
#pragma once

#include <memory>
#include <string>

#include "persistent/block_device.h"

namespace dmxx::pdata {

class FileBlockDevice final : public BlockDevice {
public:
	/*
	 * Open an existing image; its size must be a multiple of 4 KiB (-EINVAL).
	 * errno-style errors from open(2).
	 */
	static Result<std::unique_ptr<FileBlockDevice>> open(const std::string &path, bool read_only);
	/* Create (or truncate) an image of @nr_blocks zeroed blocks. */
	static Result<std::unique_ptr<FileBlockDevice>> create(const std::string &path, block_t nr_blocks);
	~FileBlockDevice() override;

	Result<block_t> nr_blocks() override;
	Result<void> read(block_t b, void *buf) override;
	Result<void> write(block_t b, const void *buf) override; /* -EPERM if read-only */
	Result<void> flush() override;

	/* Grow the file (zeroed blocks). */
	Result<void> resize(block_t nr_blocks);
	const std::string &path() const { return m_path; }

private:
	FileBlockDevice(int fd, std::string path, block_t nr_blocks, bool read_only);
	int m_fd;
	std::string m_path;
	block_t m_nr_blocks;
	bool m_read_only;
};

} // namespace dmxx::pdata
