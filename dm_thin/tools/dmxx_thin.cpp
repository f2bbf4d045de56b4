// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx-thin: thin-pool metadata images from the command line.
 *
 * It runs our portable metadata code over an image file, so what it writes
 * is what the kernel modules will write; thin_check, thin_dump and
 * thin_restore (thin-provisioning-tools) read and write the same files.
 * See usage() for the commands and exit codes.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "metadata/thin_metadata.h"
#include "persistent/block_device.h"
#include "pool_dump.h"
#include "user/file_block_device.h"
#include "xml.h"

using namespace dmxx;
using namespace dmxx::thin;
using dmxx::pdata::FileBlockDevice;

namespace
{

enum Exit : int {
	EXIT_OK = 0,
	EXIT_REFUSED = 1, /* the operation was refused: exists, no such device, no space... */
	EXIT_USAGE = 2,
	EXIT_METADATA = 3, /* the image is not metadata we can open */
	EXIT_IO = 4,
};

const char USAGE[] = R"(usage: dmxx-thin COMMAND IMAGE [ARGS...] [OPTIONS]

Thin-pool metadata (kernel format v2) in an image file.

  format IMAGE --data-block-size SECTORS --nr-data-blocks N [--metadata-blocks M]
        write empty metadata (creates or grows IMAGE to M 4 KiB blocks; default 1024)
  create-thin IMAGE DEV              a new empty thin device
  create-snap IMAGE DEV ORIGIN       a snapshot of ORIGIN (a thin or a snapshot)
  delete IMAGE DEV                   delete a device and release its blocks
  map IMAGE DEV VBLOCK [COUNT] [--data DBLOCK]
        map COUNT (1) virtual blocks from VBLOCK to newly allocated data blocks,
        or to DBLOCK.. (sharing them if they are in use)
  unmap IMAGE DEV VBLOCK [COUNT]     unmap COUNT (1) blocks from VBLOCK
  set-transaction-id IMAGE CURRENT NEW
  reserve-metadata-snap IMAGE        hold a copy of the committed metadata
  release-metadata-snap IMAGE
  resize IMAGE [--nr-data-blocks N] [--metadata-blocks M]   grow the data or metadata device
  info IMAGE                         pool and per-device summary
  dump IMAGE [-o FILE]               XML, as thin_dump prints it
  exec IMAGE [SCRIPT]                run commands (one per line, without IMAGE; '#' comments)
        from SCRIPT or stdin in one session; 'commit' commits, 'abort' forgets
        uncommitted changes; the end of the script commits. On the first failing
        line nothing after the last commit is kept.

Each single command commits on success. Options for opening an existing image:
  --data-block-size SECTORS   refuse the image unless its data block size is this

Exit codes: 0 success; 1 operation refused (already exists, no such device, no
space, not mapped...); 2 usage error; 3 the image is not metadata we can open
(unformatted, corrupt, unsupported feature or version, needs_check, block size
mismatch; nothing is written to it); 4 I/O error.
)";

/* "line N: " while `exec` runs a script line, so a failure names where it happened. */
std::string g_fail_context;

/*
 * Report and exit. No exceptions, as in the rest of the project: nothing is
 * committed on a failure path and no destructor writes to the image, so
 * ending the process here loses nothing an unwinding would have saved.
 */
[[noreturn]] void fail(int code, const std::string &msg)
{
	std::cerr << "dmxx-thin: " << g_fail_context << msg << "\n";
	std::exit(code);
}

int exit_for_errno(int e)
{
	switch (-e) {
	case EIO:
		return EXIT_IO;
	case EILSEQ:
		return EXIT_METADATA;
	default:
		return EXIT_REFUSED;
	}
}

std::string errno_text(int e)
{
	switch (-e) {
	case EEXIST:
		return "already exists";
	case ENODEV:
		return "no such device";
	case ENODATA:
		return "not mapped";
	case ENOSPC:
		return "no space left";
	case EINVAL:
		return "invalid argument";
	case EILSEQ:
		return "metadata is corrupt";
	case EOVERFLOW:
		return "too many snapshots (pool time exhausted)";
	case EBUSY:
		return "busy (a metadata snapshot is already held)";
	default:
		return std::strerror(-e);
	}
}

template <typename T> T check(Result<T> r, const std::string &what)
{
	if (r.is_error())
		fail(exit_for_errno(r.error_code()), what + ": " + errno_text(r.error_code()));
	return r.release_value();
}

void check(Result<void> r, const std::string &what)
{
	if (r.is_error())
		fail(exit_for_errno(r.error_code()), what + ": " + errno_text(r.error_code()));
}

uint64_t parse_u64(const std::string &s, const char *what)
{
	if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20)
		fail(EXIT_USAGE, std::string(what) + ": not a number: '" + s + "'");
	errno = 0;
	unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
	if (errno == ERANGE)
		fail(EXIT_USAGE, std::string(what) + ": out of range: '" + s + "'");
	return v;
}

thin_id parse_dev(const std::string &s)
{
	uint64_t v = parse_u64(s, "device id");
	if (v >= (1u << 24)) /* what the thin target accepts */
		fail(EXIT_USAGE, "device id must be below 2^24: " + s);
	return thin_id(v);
}

/* Positional arguments and --name value options, in any order. */
struct Args {
	std::vector<std::string> pos;
	std::vector<std::pair<std::string, std::string>> opts;

	static Args parse(const std::vector<std::string> &words)
	{
		Args a;
		for (size_t i = 0; i < words.size(); i++) {
			const std::string &w = words[i];
			if (w.size() > 1 && w[0] == '-' &&
			    w.find_first_not_of("0123456789", 1) != std::string::npos) {
				if (i + 1 >= words.size())
					fail(EXIT_USAGE, "option " + w + " needs a value");
				a.opts.emplace_back(w, words[++i]);
			} else {
				a.pos.push_back(w);
			}
		}
		return a;
	}
	const std::string *opt(const char *name) const
	{
		for (auto &o : opts)
			if (o.first == name)
				return &o.second;
		return nullptr;
	}
	void allow(std::initializer_list<const char *> names) const
	{
		for (auto &o : opts) {
			bool ok = false;
			for (const char *n : names)
				ok |= o.first == n;
			if (!ok)
				fail(EXIT_USAGE, "unknown option " + o.first);
		}
	}
	void want(size_t min, size_t max, const char *cmd) const
	{
		if (pos.size() < min || pos.size() > max)
			fail(EXIT_USAGE,
			     std::string(cmd) + ": wrong number of arguments (see --help)");
	}
};

/* An open image and its metadata. */
struct Session {
	std::unique_ptr<FileBlockDevice> dev;
	ThinMetadata *md = nullptr;
	~Session() { delete md; }
};

void open_session(Session &s, const std::string &path, u32 data_block_size, bool read_only)
{
	auto d = FileBlockDevice::open(path, read_only);
	if (d.is_error())
		fail(d.error_code() == -ENOENT ? EXIT_USAGE : EXIT_IO,
		     path + ": cannot open: " + std::strerror(-d.error_code()));
	s.dev = d.release_value();
	SuperblockProblem why = SuperblockProblem::None;
	OpenOptions o{data_block_size, read_only};
	auto m = ThinMetadata::open(*s.dev, o, &why);
	if (m.is_error()) {
		if (why != SuperblockProblem::None)
			fail(EXIT_METADATA, path + ": " + superblock_problem_text(why));
		fail(m.error_code() == -EIO ? EXIT_IO : EXIT_METADATA,
		     path + ": cannot open metadata: " + errno_text(m.error_code()));
	}
	s.md = m.release_value();
}

void cmd_map(ThinMetadata &md, const Args &a, size_t first)
{
	thin_id dev = parse_dev(a.pos[first]);
	uint64_t v = parse_u64(a.pos[first + 1], "virtual block");
	uint64_t count = a.pos.size() > first + 2 ? parse_u64(a.pos[first + 2], "count") : 1;
	const std::string *data = a.opt("--data");
	uint64_t d = data ? parse_u64(*data, "data block") : 0;
	if (!check(md.device_exists(dev), "map"))
		fail(EXIT_REFUSED, "map: device " + std::to_string(dev) + ": no such device");
	for (uint64_t i = 0; i < count; i++) {
		block_t b;
		if (data) {
			b = d + i;
			check(md.inc_data_block(b), "map: data block " + std::to_string(b));
		} else {
			b = check(md.alloc_data_block(), "map: allocating a data block");
		}
		check(md.insert(dev, v + i, b), "map: block " + std::to_string(v + i));
	}
}

void cmd_unmap(ThinMetadata &md, const Args &a, size_t first)
{
	thin_id dev = parse_dev(a.pos[first]);
	uint64_t v = parse_u64(a.pos[first + 1], "virtual block");
	uint64_t count = a.pos.size() > first + 2 ? parse_u64(a.pos[first + 2], "count") : 1;
	if (v + count < v)
		fail(EXIT_USAGE, "unmap: range overflows");
	check(md.remove_range(dev, v, v + count), "unmap");
}

void cmd_resize(ThinMetadata &md, FileBlockDevice &dev, const Args &a)
{
	const std::string *data = a.opt("--nr-data-blocks");
	const std::string *meta = a.opt("--metadata-blocks");
	if (!data && !meta)
		fail(EXIT_USAGE, "resize: give --nr-data-blocks and/or --metadata-blocks");
	if (data)
		check(md.resize_data(parse_u64(*data, "--nr-data-blocks")), "resize data");
	if (meta) {
		uint64_t m = parse_u64(*meta, "--metadata-blocks");
		if (m < check(md.nr_metadata_blocks(), "resize"))
			fail(EXIT_REFUSED, "resize: metadata cannot shrink");
		if (m > METADATA_MAX_BLOCKS)
			fail(EXIT_REFUSED, "resize: at most " +
						   std::to_string(METADATA_MAX_BLOCKS) +
						   " metadata blocks");
		if (m > check(dev.nr_blocks(), "resize"))
			check(dev.resize(m), "resize: growing the image");
		check(md.resize_metadata(m), "resize metadata");
	}
}

std::string info_text(ThinMetadata &md)
{
	std::ostringstream os;
	os << "transaction_id " << check(md.transaction_id(), "info") << "\n";
	os << "time " << md.time() << "\n";
	os << "data_block_size " << md.data_block_size() << "\n";
	os << "data_blocks " << check(md.nr_data_blocks(), "info") << " free "
	   << check(md.nr_free_data_blocks(), "info") << "\n";
	os << "metadata_blocks " << check(md.nr_metadata_blocks(), "info") << " free "
	   << check(md.nr_free_metadata_blocks(), "info") << "\n";
	os << "metadata_snap " << check(md.metadata_snap(), "info") << "\n";
	os << "needs_check " << (md.needs_check() ? 1 : 0) << "\n";
	/* Collect first: a visitor must not call back into ThinMetadata (root lock held). */
	std::vector<DeviceInfo> devs;
	check(md.for_each_device(
		      [](void *c, const DeviceInfo &d) {
			      static_cast<std::vector<DeviceInfo> *>(c)->push_back(d);
			      return 0;
		      },
		      &devs),
	      "info");
	for (const DeviceInfo &d : devs) {
		os << "device " << d.id << " mapped " << d.mapped_blocks;
		auto h = md.highest_mapped(d.id);
		if (h.is_ok())
			os << " highest " << h.value();
		os << " created " << d.creation_time << " snapshotted " << d.snapshotted_time
		   << "\n";
	}
	return os.str();
}

/*
 * One command on an open session (the IMAGE argument already removed).
 * Returns true if it changed anything.
 */
void run_command(Session &s, const std::string &cmd, const Args &a)
{
	ThinMetadata &md = *s.md;
	if (cmd == "create-thin") {
		a.want(1, 1, "create-thin");
		check(md.create_thin(parse_dev(a.pos[0])), "create-thin");
	} else if (cmd == "create-snap") {
		a.want(2, 2, "create-snap");
		check(md.create_snap(parse_dev(a.pos[0]), parse_dev(a.pos[1])), "create-snap");
	} else if (cmd == "delete") {
		a.want(1, 1, "delete");
		check(md.delete_device(parse_dev(a.pos[0])), "delete");
	} else if (cmd == "map") {
		a.want(2, 3, "map");
		cmd_map(md, a, 0);
	} else if (cmd == "unmap") {
		a.want(2, 3, "unmap");
		cmd_unmap(md, a, 0);
	} else if (cmd == "set-transaction-id") {
		a.want(2, 2, "set-transaction-id");
		uint64_t cur = parse_u64(a.pos[0], "current id"),
			 next = parse_u64(a.pos[1], "new id");
		auto r = md.set_transaction_id(cur, next);
		if (r.is_error())
			fail(EXIT_REFUSED, "set-transaction-id: current id is " +
						   std::to_string(check(md.transaction_id(), "")) +
						   ", not " + a.pos[0]);
	} else if (cmd == "reserve-metadata-snap") {
		a.want(0, 0, cmd.c_str());
		check(md.reserve_metadata_snap(), cmd);
	} else if (cmd == "release-metadata-snap") {
		a.want(0, 0, cmd.c_str());
		check(md.release_metadata_snap(), cmd + " (none held?)");
	} else if (cmd == "resize") {
		a.want(0, 0, "resize");
		cmd_resize(md, *s.dev, a);
	} else if (cmd == "commit") {
		a.want(0, 0, "commit");
		check(md.commit(), "commit");
	} else if (cmd == "abort") {
		a.want(0, 0, "abort");
		check(md.abort(), "abort");
	} else if (cmd == "info") {
		a.want(0, 0, "info");
		std::cout << info_text(md);
	} else {
		fail(EXIT_USAGE, "unknown command '" + cmd + "'");
	}
}

std::vector<std::string> split_words(const std::string &line)
{
	std::istringstream is(line);
	std::vector<std::string> w;
	std::string x;
	while (is >> x) {
		if (x[0] == '#')
			break;
		w.push_back(x);
	}
	return w;
}

u32 open_block_size(const Args &a)
{
	const std::string *s = a.opt("--data-block-size");
	return s ? u32(parse_u64(*s, "--data-block-size")) : 0;
}

int cmd_format(const Args &a)
{
	a.allow({"--data-block-size", "--nr-data-blocks", "--metadata-blocks"});
	a.want(1, 1, "format");
	const std::string *dbs = a.opt("--data-block-size");
	const std::string *nr = a.opt("--nr-data-blocks");
	if (!dbs || !nr)
		fail(EXIT_USAGE, "format: --data-block-size and --nr-data-blocks are required");
	uint64_t bs = parse_u64(*dbs, "--data-block-size");
	if (bs > UINT32_MAX || !valid_data_block_size(u32(bs)))
		fail(EXIT_USAGE, "format: data block size must be a multiple of 128 sectors in "
				 "128..2097152");
	uint64_t nr_data = parse_u64(*nr, "--nr-data-blocks");
	const std::string *mb = a.opt("--metadata-blocks");
	uint64_t meta = mb ? parse_u64(*mb, "--metadata-blocks") : 0;
	const std::string &path = a.pos[0];

	std::unique_ptr<FileBlockDevice> dev;
	if (auto d = FileBlockDevice::open(path, false); d.is_ok()) {
		dev = d.release_value();
		block_t have = check(dev->nr_blocks(), "format");
		if (meta > have)
			check(dev->resize(meta), "format: growing the image");
	} else {
		auto c = FileBlockDevice::create(path, meta ? meta : 1024);
		if (c.is_error())
			fail(EXIT_IO, path + ": cannot create: " + std::strerror(-c.error_code()));
		dev = c.release_value();
	}
	ThinMetadata *md = check(ThinMetadata::format(*dev, u32(bs), nr_data), "format");
	delete md;
	return EXIT_OK;
}

int cmd_dump(const Args &a)
{
	a.allow({"--data-block-size", "-o"});
	a.want(1, 1, "dump");
	Session s;
	open_session(s, a.pos[0], open_block_size(a), true);
	tools::XmlPool pool;
	int r = tools::dump_pool(*s.md, *s.dev, pool);
	if (r < 0)
		fail(exit_for_errno(r), "dump: " + errno_text(r));
	std::string xml = tools::write_xml(pool);
	if (const std::string *o = a.opt("-o")) {
		std::ofstream f(*o);
		f << xml;
		if (!f)
			fail(EXIT_IO, *o + ": cannot write");
	} else {
		std::cout << xml;
	}
	return EXIT_OK;
}

int cmd_exec(const Args &a)
{
	a.allow({"--data-block-size"});
	a.want(1, 2, "exec");
	std::ifstream file;
	std::istream *in = &std::cin;
	if (a.pos.size() == 2 && a.pos[1] != "-") {
		file.open(a.pos[1]);
		if (!file)
			fail(EXIT_USAGE, a.pos[1] + ": cannot read");
		in = &file;
	}
	Session s;
	open_session(s, a.pos[0], open_block_size(a), false);
	std::string line;
	int lineno = 0;
	while (std::getline(*in, line)) {
		lineno++;
		std::vector<std::string> w = split_words(line);
		if (w.empty())
			continue;
		std::string cmd = w[0];
		w.erase(w.begin());
		g_fail_context = "line " + std::to_string(lineno) + ": ";
		Args args = Args::parse(w);
		args.allow({"--data", "--nr-data-blocks", "--metadata-blocks"});
		run_command(s, cmd, args);
		g_fail_context.clear();
	}
	check(s.md->commit(), "commit");
	return EXIT_OK;
}

int run(int argc, char **argv)
{
	std::vector<std::string> words(argv + 1, argv + argc);
	if (words.empty() || words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
		std::cout << USAGE;
		return words.empty() ? EXIT_USAGE : EXIT_OK;
	}
	std::string cmd = words[0];
	words.erase(words.begin());
	Args a = Args::parse(words);
	if (cmd == "format")
		return cmd_format(a);
	if (cmd == "dump")
		return cmd_dump(a);
	if (cmd == "exec")
		return cmd_exec(a);
	if (a.pos.empty())
		fail(EXIT_USAGE, cmd + ": missing IMAGE (see --help)");
	static const char *const known[] = {"create-thin",
					    "create-snap",
					    "delete",
					    "map",
					    "unmap",
					    "set-transaction-id",
					    "reserve-metadata-snap",
					    "release-metadata-snap",
					    "resize",
					    "info"};
	bool ok = false;
	for (const char *k : known)
		ok |= cmd == k;
	if (!ok)
		fail(EXIT_USAGE, "unknown command '" + cmd + "' (see --help)");
	a.allow({"--data-block-size", "--data", "--nr-data-blocks", "--metadata-blocks"});
	std::string image = a.pos[0];
	a.pos.erase(a.pos.begin());
	Session s;
	bool read_only = cmd == "info";
	open_session(s, image, open_block_size(a), read_only);
	run_command(s, cmd, a);
	if (!read_only)
		check(s.md->commit(), "commit");
	return EXIT_OK;
}

} // namespace

int main(int argc, char **argv)
{
	return run(argc, argv);
}
