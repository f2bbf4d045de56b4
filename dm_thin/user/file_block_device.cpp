// SPDX-License-Identifier: GPL-2.0
#include "user/file_block_device.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dmxx::pdata {

FileBlockDevice::FileBlockDevice(int fd, std::string path, block_t nr_blocks, bool read_only)
	: m_fd(fd), m_path(std::move(path)), m_nr_blocks(nr_blocks), m_read_only(read_only)
{
}

FileBlockDevice::~FileBlockDevice() { ::close(m_fd); }

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::open(const std::string &path, bool read_only)
{
	int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return err(errno);
	struct stat st;
	if (::fstat(fd, &st) < 0) {
		int e = errno;
		::close(fd);
		return err(e);
	}
	if (st.st_size % METADATA_BLOCK_SIZE) {
		::close(fd);
		return err(EINVAL);
	}
	return std::unique_ptr<FileBlockDevice>(
		new FileBlockDevice(fd, path, block_t(st.st_size) / METADATA_BLOCK_SIZE, read_only));
}

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::create(const std::string &path, block_t nr_blocks)
{
	int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err(errno);
	if (::ftruncate(fd, off_t(nr_blocks * METADATA_BLOCK_SIZE)) < 0) {
		int e = errno;
		::close(fd);
		return err(e);
	}
	return std::unique_ptr<FileBlockDevice>(new FileBlockDevice(fd, path, nr_blocks, false));
}

Result<block_t> FileBlockDevice::nr_blocks() { return m_nr_blocks; }

Result<void> FileBlockDevice::read(block_t b, void *buf)
{
	if (b >= m_nr_blocks)
		return err(EINVAL);
	ssize_t n = ::pread(m_fd, buf, METADATA_BLOCK_SIZE, off_t(b * METADATA_BLOCK_SIZE));
	if (n < 0)
		return err(errno);
	if (size_t(n) != METADATA_BLOCK_SIZE)
		return err(EIO);
	return {};
}

Result<void> FileBlockDevice::write(block_t b, const void *buf)
{
	if (m_read_only)
		return err(EPERM);
	if (b >= m_nr_blocks)
		return err(EINVAL);
	ssize_t n = ::pwrite(m_fd, buf, METADATA_BLOCK_SIZE, off_t(b * METADATA_BLOCK_SIZE));
	if (n < 0)
		return err(errno);
	if (size_t(n) != METADATA_BLOCK_SIZE)
		return err(EIO);
	return {};
}

Result<void> FileBlockDevice::flush()
{
	if (m_read_only)
		return {};
	if (::fdatasync(m_fd) < 0)
		return err(errno);
	return {};
}

Result<void> FileBlockDevice::resize(block_t nr_blocks)
{
	if (m_read_only)
		return err(EPERM);
	if (::ftruncate(m_fd, off_t(nr_blocks * METADATA_BLOCK_SIZE)) < 0)
		return err(errno);
	m_nr_blocks = nr_blocks;
	return {};
}

} // namespace dmxx::pdata
