// SPDX-License-Identifier: GPL-2.0
/*
 * A writer and a small reader for thin-provisioning-tools' XML. The reader
 * knows exactly the elements thin_dump emits; anything else is an error
 * rather than silently ignored, so a format drift fails a test loudly.
 */
#include "xml.h"

#include <cerrno>
#include <cstdlib>
#include <map>

namespace dmxx::thin::tools
{

namespace
{

void append_attr(std::string &out, const char *name, const std::string &value)
{
	out += ' ';
	out += name;
	out += "=\"";
	out += value;
	out += '"';
}

void append_attr(std::string &out, const char *name, uint64_t value)
{
	append_attr(out, name, std::to_string(value));
}

void emit_run(std::string &out, const XmlMapping &first, uint64_t length)
{
	if (length == 1) {
		out += "    <single_mapping";
		append_attr(out, "origin_block", first.vblock);
		append_attr(out, "data_block", first.data_block);
	} else {
		out += "    <range_mapping";
		append_attr(out, "origin_begin", first.vblock);
		append_attr(out, "data_begin", first.data_block);
		append_attr(out, "length", length);
	}
	append_attr(out, "time", first.time);
	out += "/>\n";
}

} // namespace

std::string write_xml(const XmlPool &pool)
{
	std::string out;
	out += "<superblock";
	append_attr(out, "uuid", pool.uuid);
	append_attr(out, "time", pool.time);
	append_attr(out, "transaction", pool.transaction);
	append_attr(out, "flags", pool.flags);
	append_attr(out, "version", pool.version);
	append_attr(out, "data_block_size", pool.data_block_size);
	append_attr(out, "nr_data_blocks", pool.nr_data_blocks);
	if (pool.metadata_snap)
		append_attr(out, "metadata_snap", *pool.metadata_snap);
	out += ">\n";
	for (const XmlDevice &dev : pool.devices) {
		out += "  <device";
		append_attr(out, "dev_id", dev.dev_id);
		append_attr(out, "mapped_blocks", dev.mapped_blocks);
		append_attr(out, "transaction", dev.transaction);
		append_attr(out, "creation_time", dev.creation_time);
		append_attr(out, "snap_time", dev.snap_time);
		out += ">\n";
		size_t i = 0;
		while (i < dev.mappings.size()) {
			const XmlMapping &first = dev.mappings[i];
			uint64_t len = 1;
			while (i + len < dev.mappings.size()) {
				const XmlMapping &m = dev.mappings[i + len];
				if (m.vblock != first.vblock + len ||
				    m.data_block != first.data_block + len || m.time != first.time)
					break;
				len++;
			}
			emit_run(out, first, len);
			i += len;
		}
		out += "  </device>\n";
	}
	out += "</superblock>\n";
	return out;
}

namespace
{

struct Tag {
	std::string name;
	bool closing = false;	   /* </name> */
	bool self_closing = false; /* <name .../> */
	std::map<std::string, std::string> attrs;
	int line = 0;
};

class Scanner
{
public:
	explicit Scanner(const std::string &text) : m_text(text) {}

	/* Next tag; false at the end or on error (then error() is set). */
	bool next(Tag &tag)
	{
		for (;;) {
			skip_text();
			if (m_pos >= m_text.size())
				return false;
			if (starts_with("<?")) { /* declaration */
				if (!skip_past("?>"))
					return fail("unterminated <? ... ?>");
				continue;
			}
			if (starts_with("<!--")) {
				if (!skip_past("-->"))
					return fail("unterminated comment");
				continue;
			}
			return read_tag(tag);
		}
	}

	const std::string &error() const { return m_error; }
	int line() const { return m_line; }

private:
	bool starts_with(const char *s) const { return m_text.compare(m_pos, strlen_(s), s) == 0; }
	static size_t strlen_(const char *s)
	{
		size_t n = 0;
		while (s[n])
			n++;
		return n;
	}
	void advance()
	{
		if (m_text[m_pos] == '\n')
			m_line++;
		m_pos++;
	}
	bool skip_past(const char *s)
	{
		while (m_pos < m_text.size() && !starts_with(s))
			advance();
		if (m_pos >= m_text.size())
			return false;
		m_pos += strlen_(s);
		return true;
	}
	void skip_text()
	{
		while (m_pos < m_text.size() && m_text[m_pos] != '<') {
			char c = m_text[m_pos];
			if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && m_error.empty())
				m_stray_text = true;
			advance();
		}
	}
	void skip_space()
	{
		while (m_pos < m_text.size() && (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' ||
						 m_text[m_pos] == '\n' || m_text[m_pos] == '\r'))
			advance();
	}
	bool fail(const std::string &why)
	{
		m_error = "line " + std::to_string(m_line) + ": " + why;
		return false;
	}
	static bool name_char(char c)
	{
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       c == '_' || c == '-';
	}
	std::string read_name()
	{
		size_t start = m_pos;
		while (m_pos < m_text.size() && name_char(m_text[m_pos]))
			m_pos++;
		return m_text.substr(start, m_pos - start);
	}
	bool read_tag(Tag &tag)
	{
		if (m_stray_text)
			return fail("text outside tags");
		tag = Tag{};
		tag.line = m_line;
		m_pos++; /* '<' */
		if (m_pos < m_text.size() && m_text[m_pos] == '/') {
			tag.closing = true;
			m_pos++;
		}
		tag.name = read_name();
		if (tag.name.empty())
			return fail("tag without a name");
		for (;;) {
			skip_space();
			if (m_pos >= m_text.size())
				return fail("unterminated tag <" + tag.name + ">");
			if (m_text[m_pos] == '>') {
				m_pos++;
				return true;
			}
			if (starts_with("/>")) {
				if (tag.closing)
					return fail("malformed closing tag");
				tag.self_closing = true;
				m_pos += 2;
				return true;
			}
			if (tag.closing)
				return fail("attributes on a closing tag");
			std::string name = read_name();
			if (name.empty())
				return fail("bad attribute in <" + tag.name + ">");
			skip_space();
			if (m_pos >= m_text.size() || m_text[m_pos] != '=')
				return fail("attribute " + name + " without a value");
			m_pos++;
			skip_space();
			if (m_pos >= m_text.size() ||
			    (m_text[m_pos] != '"' && m_text[m_pos] != '\''))
				return fail("attribute " + name + " value not quoted");
			char quote = m_text[m_pos++];
			size_t start = m_pos;
			while (m_pos < m_text.size() && m_text[m_pos] != quote)
				advance();
			if (m_pos >= m_text.size())
				return fail("unterminated attribute " + name);
			if (!tag.attrs.emplace(name, m_text.substr(start, m_pos - start)).second)
				return fail("attribute " + name + " repeated");
			m_pos++;
		}
	}

	const std::string &m_text;
	size_t m_pos = 0;
	int m_line = 1;
	bool m_stray_text = false;
	std::string m_error;
};

class Reader
{
public:
	explicit Reader(std::string &error) : m_error(error) {}

	bool number(const Tag &tag, const char *name, uint64_t &out, bool required = true)
	{
		auto it = tag.attrs.find(name);
		if (it == tag.attrs.end()) {
			if (!required)
				return true;
			return fail(tag, std::string("<") + tag.name + "> lacks " + name);
		}
		const std::string &s = it->second;
		if (s.empty() || s.size() > 20 ||
		    s.find_first_not_of("0123456789") != std::string::npos)
			return fail(tag, std::string(name) + "=\"" + s + "\" is not a number");
		errno = 0;
		char *end = nullptr;
		unsigned long long v = strtoull(s.c_str(), &end, 10);
		if (errno == ERANGE)
			return fail(tag, std::string(name) + " out of range");
		out = v;
		return true;
	}
	bool number32(const Tag &tag, const char *name, uint32_t &out, bool required = true)
	{
		uint64_t v = out;
		if (!number(tag, name, v, required))
			return false;
		if (v > UINT32_MAX)
			return fail(tag, std::string(name) + " does not fit 32 bits");
		out = uint32_t(v);
		return true;
	}
	bool fail(const Tag &tag, const std::string &why)
	{
		m_error = "line " + std::to_string(tag.line) + ": " + why;
		return false;
	}

private:
	std::string &m_error;
};

} // namespace

bool parse_xml(const std::string &text, XmlPool &pool, std::string &error)
{
	pool = XmlPool{};
	error.clear();
	Scanner sc(text);
	Reader rd(error);
	Tag tag;
	enum { Outside, InSuperblock, InDevice, Done } state = Outside;
	XmlDevice *dev = nullptr;

	while (sc.next(tag)) {
		if (state == Done)
			return rd.fail(tag, "content after </superblock>");
		if (state == Outside) {
			if (tag.name != "superblock" || tag.closing || tag.self_closing)
				return rd.fail(tag, "expected <superblock>");
			auto uuid = tag.attrs.find("uuid");
			if (uuid != tag.attrs.end())
				pool.uuid = uuid->second;
			uint64_t snap = UINT64_MAX;
			if (!rd.number32(tag, "time", pool.time) ||
			    !rd.number(tag, "transaction", pool.transaction) ||
			    !rd.number32(tag, "flags", pool.flags, false) ||
			    !rd.number32(tag, "version", pool.version, false) ||
			    !rd.number32(tag, "data_block_size", pool.data_block_size) ||
			    !rd.number(tag, "nr_data_blocks", pool.nr_data_blocks) ||
			    !rd.number(tag, "metadata_snap", snap, false))
				return false;
			if (snap != UINT64_MAX)
				pool.metadata_snap = snap;
			state = InSuperblock;
		} else if (state == InSuperblock) {
			if (tag.name == "superblock" && tag.closing) {
				state = Done;
				continue;
			}
			if (tag.name != "device" || tag.closing)
				return rd.fail(tag, "expected <device> or </superblock>, got <" +
							    tag.name + ">");
			XmlDevice d;
			if (!rd.number32(tag, "dev_id", d.dev_id) ||
			    !rd.number(tag, "mapped_blocks", d.mapped_blocks) ||
			    !rd.number(tag, "transaction", d.transaction) ||
			    !rd.number32(tag, "creation_time", d.creation_time) ||
			    !rd.number32(tag, "snap_time", d.snap_time))
				return false;
			if (!pool.devices.empty() && pool.devices.back().dev_id >= d.dev_id)
				return rd.fail(tag, "devices out of order");
			pool.devices.push_back(std::move(d));
			dev = &pool.devices.back();
			if (!tag.self_closing)
				state = InDevice;
		} else {
			if (tag.name == "device" && tag.closing) {
				state = InSuperblock;
				continue;
			}
			if (!tag.self_closing)
				return rd.fail(tag,
					       "unexpected <" + tag.name + "> inside <device>");
			uint64_t v = 0, d = 0, len = 1;
			uint32_t t = 0;
			if (tag.name == "single_mapping") {
				if (!rd.number(tag, "origin_block", v) ||
				    !rd.number(tag, "data_block", d) ||
				    !rd.number32(tag, "time", t))
					return false;
			} else if (tag.name == "range_mapping") {
				if (!rd.number(tag, "origin_begin", v) ||
				    !rd.number(tag, "data_begin", d) ||
				    !rd.number(tag, "length", len) || !rd.number32(tag, "time", t))
					return false;
				if (len == 0 || v + len < v || d + len < d)
					return rd.fail(tag, "bad range length");
			} else {
				return rd.fail(tag, "unsupported element <" + tag.name + ">");
			}
			if (!dev->mappings.empty() && dev->mappings.back().vblock >= v)
				return rd.fail(tag, "mappings out of order");
			for (uint64_t i = 0; i < len; i++)
				dev->mappings.push_back(XmlMapping{v + i, d + i, t});
		}
	}
	if (!sc.error().empty()) {
		error = sc.error();
		return false;
	}
	if (state != Done) {
		error = "unexpected end of document";
		return false;
	}
	return true;
}

} // namespace dmxx::thin::tools
