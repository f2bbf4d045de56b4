// SPDX-License-Identifier: GPL-2.0
#include "space_map/sm_check.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>

#include "persistent/btree.h"
#include "space_map/bitmap_words.h"
#include "space_map/ref_counts.h"
#include "space_map/sm_validators.h"

namespace dmxx::pdata {

namespace {

constexpr u32 E = RefCounts::entries_per_bitmap;

const u8 *bitmap_payload(const ReadRef &r) { return r.bytes() + sizeof(BitmapHeader); }

/*
 * The index entries of a committed map, for either kind. Heap-allocated:
 * the metadata index is 4 KiB, too big for a kernel stack frame.
 */
class IndexReader {
public:
	IndexReader(TransactionManager &tm, SmKind kind, const SmRoot &root)
		: m_tm(tm), m_kind(kind), m_root(root), m_tree(tm, 1, m_value_type)
	{
	}

	u64 nr_blocks() const { return from_le(m_root.nr_blocks); }
	u64 nr_bitmaps() const { return nr_bitmaps_for(nr_blocks(), E); }

	Result<void> load()
	{
		if (m_kind != SmKind::Metadata)
			return {};
		if (nr_bitmaps() > max_metadata_bitmaps)
			return err(EILSEQ);
		ReadRef b = TRY(m_tm.read_lock(from_le(m_root.bitmap_root), &sm_index_validator()));
		mem_copy(m_entries, static_cast<const MetadataIndexBlock *>(b.data())->index,
			 sizeof(m_entries));
		return {};
	}

	Result<IndexEntry> get(u64 i)
	{
		if (m_kind == SmKind::Metadata)
			return m_entries[i];
		IndexEntry ie;
		auto r = m_tree.lookup(from_le(m_root.bitmap_root), &i, &ie);
		if (r.is_error())
			return r.error_code() == -ENODATA ? err(EILSEQ) : r.error();
		return ie;
	}

	/* The count of block @b whose bitmap value is 3. */
	Result<u32> overflow_count(block_t b)
	{
		le32 v;
		auto r = m_overflow.lookup(from_le(m_root.ref_count_root), &b, &v);
		if (r.is_error())
			return r.error_code() == -ENODATA ? err(EILSEQ) : r.error();
		return from_le(v);
	}

private:
	TransactionManager &m_tm;
	SmKind m_kind;
	SmRoot m_root;
	PlainValue m_value_type{sizeof(IndexEntry)};
	Btree m_tree;
	PlainValue m_count_type{sizeof(le32)};
	Btree m_overflow{m_tm, 1, m_count_type};
	IndexEntry m_entries[max_metadata_bitmaps] = {};
};

Result<SmRoot> copy_root(const void *root, usize len)
{
	if (len < sizeof(SmRoot))
		return err(EINVAL);
	SmRoot r;
	mem_copy(&r, root, sizeof(r));
	return r;
}

/* Owns an IndexReader for the duration of a call. */
struct ReaderHolder {
	IndexReader *r = nullptr;
	~ReaderHolder() { delete r; }
};

Result<IndexReader *> make_reader(TransactionManager &tm, SmKind kind, const SmRoot &root,
				  ReaderHolder &holder)
{
	holder.r = new (AllocMode::Sleep) IndexReader(tm, kind, root);
	if (!holder.r)
		return err(ENOMEM);
	TRY(holder.r->load());
	return holder.r;
}

} // namespace

Result<void> visit_space_map_blocks(TransactionManager &tm, SmKind kind, const void *root,
				    usize len, BlockVisitFn fn, void *ctx)
{
	SmRoot smr = TRY(copy_root(root, len));
	ReaderHolder holder;
	IndexReader *index = TRY(make_reader(tm, kind, smr, holder));

	if (kind == SmKind::Metadata)
		fn(ctx, from_le(smr.bitmap_root));
	else
		TRY(visit_btree_references(tm, from_le(smr.bitmap_root), 1, fn, ctx));
	for (u64 i = 0; i < index->nr_bitmaps(); i++)
		fn(ctx, from_le(TRY(index->get(i)).blocknr));
	return visit_btree_references(tm, from_le(smr.ref_count_root), 1, fn, ctx);
}

Result<void> visit_counts(TransactionManager &tm, SmKind kind, const void *root, usize len,
			  CountVisitFn fn, void *ctx)
{
	SmRoot smr = TRY(copy_root(root, len));
	ReaderHolder holder;
	IndexReader *index = TRY(make_reader(tm, kind, smr, holder));

	u64 nr_blocks = index->nr_blocks();
	for (u64 i = 0; i < index->nr_bitmaps(); i++) {
		IndexEntry ie = TRY(index->get(i));
		ReadRef bm = TRY(tm.read_lock(from_le(ie.blocknr), &sm_bitmap_validator()));
		u32 n = u32(min<u64>(E, nr_blocks - i * E));
		for (u32 bit = 0; bit < n; bit++) {
			block_t b = i * E + bit;
			u32 count = bitmap::get(bitmap_payload(bm), bit);
			if (count == count_in_overflow)
				count = TRY(index->overflow_count(b));
			TRY(fn(ctx, b, count));
		}
	}
	return {};
}

Result<void> check_space_map(TransactionManager &tm, SmKind kind, const void *root, usize len,
			     SmCheckReport &report)
{
	report = {};
	SmRoot smr = TRY(copy_root(root, len));
	ReaderHolder holder;
	auto reader = make_reader(tm, kind, smr, holder);
	if (reader.is_error()) {
		report.failure.set("index block unreadable (%d)", reader.error_code());
		return reader.error();
	}
	IndexReader *index = reader.value();
	report.nr_blocks = index->nr_blocks();
	report.nr_bitmaps = index->nr_bitmaps();

	BtreeCheckReport bt;
	if (kind == SmKind::Disk) {
		auto r = check_btree(tm, from_le(smr.bitmap_root), 1, sizeof(IndexEntry), bt);
		if (r.is_error()) {
			mem_copy(&report.failure, &bt.failure, sizeof(bt.failure));
			return r;
		}
		if (bt.nr_entries != report.nr_bitmaps) {
			report.failure.set("index btree has %llu entries for %llu bitmaps",
					   (unsigned long long)bt.nr_entries,
					   (unsigned long long)report.nr_bitmaps);
			return err(EILSEQ);
		}
	}
	auto r = check_btree(tm, from_le(smr.ref_count_root), 1, sizeof(le32), bt);
	if (r.is_error()) {
		mem_copy(&report.failure, &bt.failure, sizeof(bt.failure));
		return r;
	}
	u64 overflow_entries = bt.nr_entries;

	u64 threes = 0;
	for (u64 i = 0; i < report.nr_bitmaps; i++) {
		auto ier = index->get(i);
		if (ier.is_error()) {
			report.failure.set("no index entry for bitmap %llu", (unsigned long long)i);
			return ier.error();
		}
		IndexEntry ie = ier.value();
		auto bmr = tm.read_lock(from_le(ie.blocknr), &sm_bitmap_validator());
		if (bmr.is_error()) {
			report.failure.set("bitmap %llu at block %llu unreadable (%d)",
					   (unsigned long long)i,
					   (unsigned long long)from_le(ie.blocknr),
					   bmr.error_code());
			return bmr.error();
		}
		const u8 *bits = bitmap_payload(bmr.value());
		u32 n = u32(min<u64>(E, report.nr_blocks - i * E));
		u32 zeroes = bitmap::count_free(bits, 0, E);
		if (zeroes != from_le(ie.nr_free)) {
			report.failure.set("bitmap %llu has %u free entries, its index says %u",
					   (unsigned long long)i, zeroes, from_le(ie.nr_free));
			return err(EILSEQ);
		}
		u32 nfb = from_le(ie.none_free_before);
		if (nfb > E || bitmap::find_free(bits, nullptr, 0, nfb) != nfb) {
			report.failure.set("bitmap %llu has a free entry below its hint %u",
					   (unsigned long long)i, nfb);
			return err(EILSEQ);
		}
		if (bitmap::count_free(bits, n, E) != E - n) {
			report.failure.set("bitmap %llu counts blocks beyond the end",
					   (unsigned long long)i);
			return err(EILSEQ);
		}
		report.nr_allocated += n - bitmap::count_free(bits, 0, n);
		for (u32 bit = 0; bit < n; bit++) {
			if (bitmap::get(bits, bit) != count_in_overflow)
				continue;
			block_t b = i * E + bit;
			auto c = index->overflow_count(b);
			if (c.is_error() || c.value() < count_in_overflow) {
				report.failure.set("block %llu: a 3 without an overflow count",
						   (unsigned long long)b);
				return err(EILSEQ);
			}
			threes++;
		}
	}
	report.nr_overflow_entries = overflow_entries;
	if (threes != overflow_entries) {
		report.failure.set("%llu overflow entries for %llu bitmap entries of 3",
				   (unsigned long long)overflow_entries,
				   (unsigned long long)threes);
		return err(EILSEQ);
	}
	if (report.nr_allocated != from_le(smr.nr_allocated)) {
		report.failure.set("root says %llu blocks allocated, bitmaps hold %llu",
				   (unsigned long long)from_le(smr.nr_allocated),
				   (unsigned long long)report.nr_allocated);
		return err(EILSEQ);
	}
	return {};
}

} // namespace dmxx::pdata
