// SPDX-License-Identifier: GPL-2.0
#include "oracle.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

namespace dmxx::thin::test {

CmdResult run_command(const std::string &cmd)
{
	CmdResult r;
	std::string full = cmd + " 2>&1";
	FILE *p = popen(full.c_str(), "r");
	if (!p)
		return r;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		r.output.append(buf, n);
	int st = pclose(p);
	if (st != -1 && WIFEXITED(st))
		r.status = WEXITSTATUS(st);
	return r;
}

std::string oracle_tool(const char *name)
{
	for (const char *dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/usr/local/sbin/"}) {
		std::string p = std::string(dir) + name;
		if (access(p.c_str(), X_OK) == 0)
			return p;
	}
	return "";
}

TempDir::TempDir()
{
	const char *base = getenv("TMPDIR");
	std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dmxx-thin-XXXXXX";
	std::vector<char> b(tmpl.begin(), tmpl.end());
	b.push_back('\0');
	if (mkdtemp(b.data()))
		m_path = b.data();
}

TempDir::~TempDir()
{
	if (!m_path.empty())
		run_command("rm -rf '" + m_path + "'");
}

bool write_image(pdata::BlockDevice &dev, const std::string &path)
{
	auto nr = dev.nr_blocks();
	if (nr.is_error())
		return false;
	std::ofstream f(path, std::ios::binary | std::ios::trunc);
	std::vector<char> buf(pdata::METADATA_BLOCK_SIZE);
	for (pdata::block_t b = 0; b < nr.value(); b++) {
		if (dev.read(b, buf.data()).is_error())
			return false;
		f.write(buf.data(), std::streamsize(buf.size()));
	}
	return bool(f);
}

std::string thin_check(const std::string &image)
{
	std::string tool = oracle_tool("thin_check");
	if (tool.empty())
		return "thin_check not installed";
	CmdResult r = run_command(tool + " '" + image + "'");
	if (r.status == 0)
		return "";
	return "thin_check exit " + std::to_string(r.status) + ":\n" + r.output;
}

std::string thin_dump(const std::string &image, std::string &xml, bool metadata_snap)
{
	std::string tool = oracle_tool("thin_dump");
	if (tool.empty())
		return "thin_dump not installed";
	std::string out = image + ".dump.xml";
	CmdResult r = run_command(tool + (metadata_snap ? " -m" : "") + " -o '" + out + "' '" +
				  image + "'");
	if (r.status != 0)
		return "thin_dump exit " + std::to_string(r.status) + ":\n" + r.output;
	std::ifstream f(out);
	xml.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
	return "";
}

} // namespace dmxx::thin::test
