// SPDX-License-Identifier: GPL-2.0
/*
 * Thin-pool metadata over the persistent-data layers. See thin_metadata.h.
 *
 * Structure: ThinMetadata is the locked facade; Impl owns one open
 * transaction's machinery (cache, manager, space maps, btree descriptors,
 * in-core roots and device details). abort() and the failure paths discard
 * the whole Impl and open a fresh one from the superblock, so no state
 * of a failed transaction can leak into the next one.
 *
 * Trees, all rooted in the superblock:
 *   mapping   2 levels: (device, vblock) -> MappingValue
 *   top       the same root seen as 1 level: device -> SubtreeValue
 *   bottom    one device's subtree: vblock -> MappingValue
 *   details   1 level: device -> DiskDeviceDetails (plain)
 */
#include "thin_metadata.h"

#include <dmxx/mem.h>
#include <dmxx/new.h>
#include <dmxx/platform.h>

#include "device_table.h"
#include "persistent/block_cache.h"
#include "persistent/btree.h"
#include "persistent/transaction.h"
#include "sb_validator.h"
#include "space_map/disk_space_map.h"
#include "space_map/metadata_space_map.h"
#include "value_types.h"

namespace dmxx::thin {

using pdata::Btree;
using pdata::ReadRef;
using pdata::WriteRef;

/* Enough for a btree spine per tree plus the space maps' working set; it grows if needed. */
constexpr unsigned CACHE_BLOCKS = 1024;

struct ThinMetadata::Impl {
	Impl(pdata::BlockDevice &dev, unsigned cache_blocks)
		: cache(dev, cache_blocks ? cache_blocks : CACHE_BLOCKS), tm(cache),
		  subtree_vt(tm, bottom)
	{
	}
	~Impl()
	{
		/* The data map first: it lives in blocks the metadata map counts. */
		delete data_sm;
		delete meta_sm;
	}

	pdata::BlockCache cache;
	pdata::TransactionManager tm;
	pdata::MetadataSpaceMap *meta_sm = nullptr;
	pdata::DiskSpaceMap *data_sm = nullptr;

	MappingValue mapping_vt;
	pdata::PlainValue details_vt{sizeof(DiskDeviceDetails)};
	Btree mapping{tm, 2, mapping_vt};
	Btree bottom{tm, 1, mapping_vt};
	SubtreeValue subtree_vt;
	Btree top{tm, 1, subtree_vt};
	Btree details{tm, 1, details_vt};

	/* The open transaction's view of the superblock. */
	block_t mapping_root = 0;
	block_t details_root = 0;
	block_t held_root = 0;
	u64 trans_id = 0;
	u32 time = 0;
	u32 flags = 0;

	DeviceTable devices;
	Mutex devices_lock; /* lookups (shared root lock) load details concurrently */

	/*
	 * A change failed half way: the btrees may be inconsistent. Only abort()
	 * (or closing) is allowed; commit() would make the damage durable.
	 */
	bool broken = false;
};

/* ---- helpers ------------------------------------------------------------------------ */

namespace {

u64 key1(thin_id dev) { return u64(dev); }

/* Make @r's error sticky: the transaction can no longer be committed. */
template <typename T> Result<T> poison(bool &broken, Result<T> r)
{
	if (r.is_error())
		broken = true;
	return r;
}

} // namespace

#define TRY_OR_BREAK(impl, expr) TRY(poison((impl)->broken, (expr)))

/* ---- construction -------------------------------------------------------------------- */

ThinMetadata::ThinMetadata(pdata::BlockDevice &dev, u32 data_block_size, bool read_only)
	: m_dev(dev), m_data_block_size(data_block_size), m_read_only(read_only)
{
}

ThinMetadata::~ThinMetadata() { delete m_impl; }

static Result<ThinMetadata::Impl *> new_impl(pdata::BlockDevice &dev, unsigned cache_blocks)
{
	auto *impl = new (AllocMode::Sleep) ThinMetadata::Impl(dev, cache_blocks);
	if (!impl)
		return err(ENOMEM);
	Result<void> r = impl->cache.init();
	if (r.is_ok())
		r = impl->tm.init();
	if (r.is_error()) {
		delete impl;
		return r.error();
	}
	return impl;
}

/* Fill @impl from the committed superblock @sb (already judged by check_superblock). */
static Result<void> load_transaction(ThinMetadata::Impl *impl, const DiskSuperblock &sb)
{
	impl->meta_sm = TRY(pdata::MetadataSpaceMap::open(impl->tm, sb.metadata_space_map_root,
							   SPACE_MAP_ROOT_BYTES));
	impl->data_sm = TRY(
		pdata::DiskSpaceMap::open(impl->tm, sb.data_space_map_root, SPACE_MAP_ROOT_BYTES));
	impl->mapping_vt.bind(impl->data_sm);

	impl->mapping_root = from_le(sb.data_mapping_root);
	impl->details_root = from_le(sb.device_details_root);
	impl->held_root = from_le(sb.held_root);
	impl->trans_id = from_le(sb.trans_id);
	impl->time = from_le(sb.time);
	impl->flags = from_le(sb.flags);

	/* Roots outside the device are damage, not something to read. */
	block_t nr = TRY(impl->meta_sm->nr_blocks());
	if (impl->mapping_root == SUPERBLOCK_LOCATION || impl->mapping_root >= nr ||
	    impl->details_root == SUPERBLOCK_LOCATION || impl->details_root >= nr ||
	    impl->held_root >= nr)
		return err(EILSEQ);
	if (nr > TRY(impl->cache.nr_blocks()))
		return err(EILSEQ);
	return {};
}

/* Read the committed superblock through the cache (validated) and load it. */
static Result<void> reload(ThinMetadata::Impl *impl)
{
	DiskSuperblock sb;
	{
		ReadRef ref =
			TRY(impl->cache.read_lock(SUPERBLOCK_LOCATION, &superblock_validator()));
		mem_copy(&sb, ref.data(), sizeof(sb));
	}
	return load_transaction(impl, sb);
}

/* Write the open transaction's state into the superblock and commit. */
static Result<void> commit_impl(ThinMetadata::Impl *impl, bool fresh, u32 data_block_size)
{
	/* Device details changed in core go to the details tree first. */
	for (u32 i = 0; i < impl->devices.size(); i++) {
		DeviceEntry &e = impl->devices.at(i);
		if (!e.changed)
			continue;
		u64 key = key1(e.id);
		DiskDeviceDetails d = to_disk(e);
		impl->details_root = TRY(impl->details.insert(impl->details_root, &key, &d));
		e.changed = false;
	}

	TRY(impl->data_sm->commit());
	TRY(impl->tm.pre_commit());

	u8 data_root[SPACE_MAP_ROOT_BYTES] = {};
	u8 meta_root[SPACE_MAP_ROOT_BYTES] = {};
	TRY(impl->data_sm->copy_root(data_root, sizeof(data_root)));
	TRY(impl->meta_sm->copy_root(meta_root, sizeof(meta_root)));
	block_t nr_meta = TRY(impl->meta_sm->nr_blocks());

	WriteRef sbref = fresh ? TRY(impl->cache.write_lock_zero(SUPERBLOCK_LOCATION,
								  &superblock_validator()))
			       : TRY(impl->cache.write_lock(SUPERBLOCK_LOCATION,
							    &superblock_validator()));
	DiskSuperblock sb;
	mem_copy(&sb, sbref.data(), sizeof(sb));
	if (fresh) {
		sb.magic = to_le64(SUPERBLOCK_MAGIC);
		sb.version = to_le32(METADATA_VERSION);
		sb.metadata_block_size = to_le32(METADATA_BLOCK_SECTORS);
		sb.data_block_size = to_le32(data_block_size);
	}
	sb.flags = to_le32(impl->flags);
	sb.time = to_le32(impl->time);
	sb.trans_id = to_le64(impl->trans_id);
	sb.held_root = to_le64(impl->held_root);
	mem_copy(sb.data_space_map_root, data_root, SPACE_MAP_ROOT_BYTES);
	mem_copy(sb.metadata_space_map_root, meta_root, SPACE_MAP_ROOT_BYTES);
	sb.data_mapping_root = to_le64(impl->mapping_root);
	sb.device_details_root = to_le64(impl->details_root);
	/* The kernel records the size only at format; we keep it true after a resize. */
	sb.metadata_nr_blocks = to_le64(nr_meta);
	mem_copy(sbref.data(), &sb, sizeof(sb));
	return impl->tm.commit(move(sbref));
}

Result<ThinMetadata *> ThinMetadata::format(pdata::BlockDevice &dev, u32 data_block_size,
					    block_t nr_data_blocks)
{
	if (!valid_data_block_size(data_block_size) || nr_data_blocks > MAX_DATA_BLOCK)
		return err(EINVAL);
	block_t nr_dev = TRY(dev.nr_blocks());
	if (nr_dev < 16) /* superblock, space maps, two roots, and room to commit */
		return err(ENOSPC);

	auto *md = new (AllocMode::Sleep) ThinMetadata(dev, data_block_size, false);
	if (!md)
		return err(ENOMEM);
	auto r = new_impl(dev, 0);
	if (r.is_error()) {
		delete md;
		return r.error();
	}
	Impl *impl = r.release_value();
	md->m_impl = impl;

	auto build = [&]() -> Result<void> {
		impl->meta_sm = TRY(pdata::MetadataSpaceMap::format(impl->tm, SUPERBLOCK_LOCATION));
		impl->data_sm = TRY(pdata::DiskSpaceMap::create(impl->tm, nr_data_blocks));
		impl->mapping_vt.bind(impl->data_sm);
		impl->mapping_root = TRY(impl->mapping.create_empty());
		impl->details_root = TRY(impl->details.create_empty());
		return commit_impl(impl, true, data_block_size);
	};
	Result<void> b = build();
	if (b.is_error()) {
		delete md;
		return b.error();
	}
	return md;
}

Result<ThinMetadata *> ThinMetadata::open(pdata::BlockDevice &dev, const OpenOptions &opts,
					  SuperblockProblem *problem)
{
	if (problem)
		*problem = SuperblockProblem::None;
	if (opts.data_block_size && !valid_data_block_size(opts.data_block_size))
		return err(EINVAL);

	/*
	 * Judge the superblock straight from the device, before any cache or
	 * space map exists: nothing that could write is built for a device we
	 * refuse.
	 */
	block_t nr_dev = TRY(dev.nr_blocks());
	if (nr_dev == 0)
		return err(ENODATA);
	u8 *raw = static_cast<u8 *>(dmxx_alloc(METADATA_BLOCK_BYTES, DMXX_ALLOC_SLEEP));
	if (!raw)
		return err(ENOMEM);
	Result<void> rd = dev.read(SUPERBLOCK_LOCATION, raw);
	SuperblockProblem p = rd.is_ok() ? check_superblock(raw, SUPERBLOCK_LOCATION,
							    opts.data_block_size, nr_dev)
					 : SuperblockProblem::None;
	DiskSuperblock sb;
	mem_copy(&sb, raw, sizeof(sb));
	dmxx_free(raw);
	if (rd.is_error())
		return rd.error();
	if (p == SuperblockProblem::CompatRoFeatures && opts.read_only)
		p = SuperblockProblem::None; /* read-only access is what those bits allow */
	if (p == SuperblockProblem::NeedsCheck && opts.read_only)
		p = SuperblockProblem::None; /* tools may still look at it */
	if (p != SuperblockProblem::None) {
		if (problem)
			*problem = p;
		dmxx_log(DMXX_LOG_ERR, "thin metadata: %s\n", superblock_problem_text(p));
		return err(superblock_problem_errno(p));
	}

	auto *md = new (AllocMode::Sleep)
		ThinMetadata(dev, from_le(sb.data_block_size), opts.read_only);
	if (!md)
		return err(ENOMEM);
	md->m_cache_blocks = opts.cache_blocks;
	auto r = new_impl(dev, opts.cache_blocks);
	if (r.is_error()) {
		delete md;
		return r.error();
	}
	md->m_impl = r.release_value();
	Result<void> l = reload(md->m_impl);
	if (l.is_error()) {
		dmxx_log(DMXX_LOG_ERR, "thin metadata: cannot open the space maps or roots (%d)\n",
			 l.error_code());
		delete md;
		return l.error();
	}
	return md;
}

/* Replace the open transaction by the last committed one. Caller holds the root lock. */
static Result<void> reopen(pdata::BlockDevice &dev, unsigned cache_blocks,
			   ThinMetadata::Impl *&impl)
{
	delete impl; /* dirty blocks go with the cache, unwritten */
	impl = nullptr;
	impl = TRY(new_impl(dev, cache_blocks));
	Result<void> r = reload(impl);
	if (r.is_error()) {
		delete impl;
		impl = nullptr;
		return r.error();
	}
	return {};
}

/* ---- device details ------------------------------------------------------------------- */

/*
 * The details of @dev, from the in-core table or the details tree (then
 * cached). -ENODEV if there is no such device. Caller holds the root lock
 * (either mode) and devices_lock.
 */
static Result<DeviceEntry *> find_device(ThinMetadata::Impl *impl, thin_id dev)
{
	if (DeviceEntry *e = impl->devices.find(dev))
		return e;
	u64 key = key1(dev);
	DiskDeviceDetails d;
	Result<void> r = impl->details.lookup(impl->details_root, &key, &d);
	if (r.is_error())
		return r.error_code() == -ENODATA ? err(ENODEV) : r.error();
	return impl->devices.add(from_disk(dev, d));
}

#define CHECK_WRITABLE()                                                                      \
	do {                                                                                   \
		if (!m_impl)                                                                   \
			return err(EIO);                                                       \
		if (m_read_only)                                                               \
			return err(EPERM);                                                     \
		if (m_impl->broken)                                                            \
			return err(EIO);                                                       \
	} while (0)

#define CHECK_OPEN()                                                                          \
	do {                                                                                   \
		if (!m_impl)                                                                   \
			return err(EIO);                                                       \
	} while (0)

Result<bool> ThinMetadata::device_exists(thin_id dev)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Guard d(m_impl->devices_lock);
	auto r = find_device(m_impl, dev);
	if (r.is_ok())
		return true;
	if (r.error_code() == -ENODEV)
		return false;
	return r.error();
}

Result<DeviceInfo> ThinMetadata::device_info(thin_id dev)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Guard d(m_impl->devices_lock);
	DeviceEntry *e = TRY(find_device(m_impl, dev));
	return DeviceInfo{e->id, e->mapped_blocks, e->transaction_id, e->creation_time,
			  e->snapshotted_time};
}

Result<void> ThinMetadata::for_each_device(DeviceVisitor fn, void *ctx)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Impl *impl = m_impl;
	/* The tree knows every device; the table knows the newest counts of some. */
	return impl->details.walk(impl->details_root, [&](const u64 *keys,
							  const void *value) -> Result<void> {
		DiskDeviceDetails d;
		mem_copy(&d, value, sizeof(d));
		DeviceEntry e = from_disk(thin_id(keys[0]), d);
		{
			Guard dl(impl->devices_lock);
			if (DeviceEntry *c = impl->devices.find(e.id))
				e = *c;
		}
		DeviceInfo info{e.id, e.mapped_blocks, e.transaction_id, e.creation_time,
				e.snapshotted_time};
		int rc = fn(ctx, info);
		return rc < 0 ? err(rc) : Result<void>();
	});
}

Result<void> ThinMetadata::create_thin(thin_id dev)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	{
		Guard d(impl->devices_lock);
		auto r = find_device(impl, dev);
		if (r.is_ok())
			return err(EEXIST);
		if (r.error_code() != -ENODEV)
			return r.error();
	}
	/* Reserve the table slot first: after the trees change, nothing may fail softly. */
	DeviceEntry e{dev, 0, impl->trans_id, impl->time, impl->time, false};
	{
		Guard d(impl->devices_lock);
		TRY(impl->devices.add(e));
	}
	auto undo_slot = [&] {
		Guard d(impl->devices_lock);
		impl->devices.erase(dev);
	};

	Result<block_t> sub = impl->bottom.create_empty();
	if (sub.is_error()) {
		undo_slot();
		impl->broken = true;
		return sub.error();
	}
	u64 key = key1(dev);
	le64 v = to_le64(sub.value());
	auto root = impl->top.insert(impl->mapping_root, &key, &v);
	if (root.is_error()) {
		undo_slot();
		impl->broken = true;
		return root.error();
	}
	impl->mapping_root = root.value();
	DiskDeviceDetails dd = to_disk(e);
	impl->details_root =
		TRY_OR_BREAK(impl, impl->details.insert(impl->details_root, &key, &dd));
	return {};
}

Result<void> ThinMetadata::create_snap(thin_id dev, thin_id origin)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	DeviceEntry snap;
	{
		Guard d(impl->devices_lock);
		auto r = find_device(impl, dev);
		if (r.is_ok())
			return err(EEXIST);
		if (r.error_code() != -ENODEV)
			return r.error();
		DeviceEntry *o = TRY(find_device(impl, origin)); /* -ENODEV */
		snap = *o;
	}
	/* Mapping times are 24 bits wide: a pool that wrapped could not tell old from new. */
	if (impl->time >= TIME_MASK)
		return err(EOVERFLOW);

	u64 okey = key1(origin);
	le64 v;
	TRY(impl->top.lookup(impl->mapping_root, &okey, &v));
	block_t origin_root = from_le(v);

	/* The snapshot is one more reference to the origin's whole tree. */
	TRY_OR_BREAK(impl, impl->tm.inc(origin_root));
	u64 key = key1(dev);
	impl->mapping_root = TRY_OR_BREAK(impl, impl->top.insert(impl->mapping_root, &key, &v));

	impl->time++;
	snap.id = dev;
	snap.transaction_id = impl->trans_id;
	snap.creation_time = impl->time;
	snap.snapshotted_time = impl->time;
	snap.changed = false;
	{
		Guard d(impl->devices_lock);
		DeviceEntry *o = TRY_OR_BREAK(impl, find_device(impl, origin));
		o->snapshotted_time = impl->time;
		o->changed = true;
		TRY_OR_BREAK(impl, impl->devices.add(snap));
	}
	DiskDeviceDetails dd = to_disk(snap);
	impl->details_root =
		TRY_OR_BREAK(impl, impl->details.insert(impl->details_root, &key, &dd));
	return {};
}

Result<void> ThinMetadata::delete_device(thin_id dev)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	{
		Guard d(impl->devices_lock);
		TRY(find_device(impl, dev));
		impl->devices.erase(dev);
	}
	u64 key = key1(dev);
	impl->details_root = TRY_OR_BREAK(impl, impl->details.remove(impl->details_root, &key));
	/* Removing the top-level entry drops the subtree (SubtreeValue::dec). */
	impl->mapping_root = TRY_OR_BREAK(impl, impl->top.remove(impl->mapping_root, &key));
	return {};
}

/* ---- mappings ------------------------------------------------------------------------------ */

Result<LookupResult> ThinMetadata::lookup(thin_id dev, block_t vblock)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Impl *impl = m_impl;
	u32 snapshotted;
	{
		Guard d(impl->devices_lock);
		DeviceEntry *e = TRY(find_device(impl, dev));
		snapshotted = e->snapshotted_time;
	}
	u64 keys[2] = {key1(dev), vblock};
	le64 v;
	TRY(impl->mapping.lookup(impl->mapping_root, keys, &v));
	u64 bt = from_le(v);
	u32 t = unpack_time(bt);
	return LookupResult{unpack_block(bt), t, snapshotted > t};
}

Result<void> ThinMetadata::insert(thin_id dev, block_t vblock, block_t data_block)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	if (data_block >= TRY(impl->data_sm->nr_blocks()))
		return err(EINVAL);
	{
		Guard d(impl->devices_lock);
		TRY(find_device(impl, dev)); /* else the 2-level insert would invent a device */
	}
	u64 keys[2] = {key1(dev), vblock};
	le64 v = to_le64(pack_block_time(data_block, impl->time));
	bool inserted = false;
	impl->mapping_root =
		TRY_OR_BREAK(impl, impl->mapping.insert(impl->mapping_root, keys, &v, &inserted));
	Guard d(impl->devices_lock);
	DeviceEntry *e = TRY_OR_BREAK(impl, find_device(impl, dev));
	if (inserted)
		e->mapped_blocks++;
	e->changed = true;
	return {};
}

Result<void> ThinMetadata::remove(thin_id dev, block_t vblock)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	{
		Guard d(impl->devices_lock);
		TRY(find_device(impl, dev));
	}
	u64 keys[2] = {key1(dev), vblock};
	auto r = impl->mapping.remove(impl->mapping_root, keys);
	if (r.is_error()) {
		if (r.error_code() == -ENODATA)
			return r.error(); /* nothing changed */
		impl->broken = true;
		return r.error();
	}
	impl->mapping_root = r.value();
	Guard d(impl->devices_lock);
	DeviceEntry *e = TRY_OR_BREAK(impl, find_device(impl, dev));
	e->mapped_blocks--;
	e->changed = true;
	return {};
}

Result<u64> ThinMetadata::remove_range(thin_id dev, block_t begin, block_t end)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	if (end <= begin)
		return u64(0);
	{
		Guard d(impl->devices_lock);
		TRY(find_device(impl, dev));
	}
	u64 keys[2] = {key1(dev), begin};
	u64 n = 0;
	impl->mapping_root =
		TRY_OR_BREAK(impl, impl->mapping.remove_range(impl->mapping_root, keys, end, &n));
	Guard d(impl->devices_lock);
	DeviceEntry *e = TRY_OR_BREAK(impl, find_device(impl, dev));
	e->mapped_blocks -= n;
	if (n)
		e->changed = true;
	return n;
}

Result<u64> ThinMetadata::mapped_count(thin_id dev)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Guard d(m_impl->devices_lock);
	DeviceEntry *e = TRY(find_device(m_impl, dev));
	return e->mapped_blocks;
}

Result<block_t> ThinMetadata::highest_mapped(thin_id dev)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Impl *impl = m_impl;
	{
		Guard d(impl->devices_lock);
		TRY(find_device(impl, dev));
	}
	u64 key = key1(dev);
	le64 v;
	TRY(impl->top.lookup(impl->mapping_root, &key, &v));
	u64 highest;
	TRY(impl->bottom.find_highest_key(from_le(v), &highest));
	return highest;
}

Result<void> ThinMetadata::for_each_mapping(thin_id dev, MappingVisitor fn, void *ctx)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	Impl *impl = m_impl;
	u64 key = key1(dev);
	le64 v;
	auto r = impl->top.lookup(impl->mapping_root, &key, &v);
	if (r.is_error())
		return r.error_code() == -ENODATA ? err(ENODEV) : r.error();
	return impl->bottom.walk(from_le(v), [&](const u64 *keys,
						 const void *value) -> Result<void> {
		u64 bt = load_le64(value);
		int rc = fn(ctx, keys[0], unpack_block(bt), unpack_time(bt));
		return rc < 0 ? err(rc) : Result<void>();
	});
}

/* ---- data blocks -------------------------------------------------------------------------- */

Result<block_t> ThinMetadata::alloc_data_block()
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	auto r = m_impl->data_sm->new_block();
	if (r.is_error() && r.error_code() != -ENOSPC)
		m_impl->broken = true;
	return r;
}

Result<void> ThinMetadata::inc_data_block(block_t b)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	if (b >= TRY(m_impl->data_sm->nr_blocks()))
		return err(EINVAL);
	return poison(m_impl->broken, m_impl->data_sm->inc(b));
}

Result<void> ThinMetadata::dec_data_block(block_t b)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	if (b >= TRY(m_impl->data_sm->nr_blocks()))
		return err(EINVAL);
	if (TRY(m_impl->data_sm->get_count(b)) == 0)
		return err(EINVAL);
	return poison(m_impl->broken, m_impl->data_sm->dec(b));
}

Result<u32> ThinMetadata::data_block_count(block_t b)
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->data_sm->get_count(b);
}

Result<block_t> ThinMetadata::nr_data_blocks()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->data_sm->nr_blocks();
}

Result<block_t> ThinMetadata::nr_free_data_blocks()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->data_sm->nr_free();
}

/* ---- pool ------------------------------------------------------------------------------- */

Result<u64> ThinMetadata::transaction_id()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->trans_id;
}

Result<void> ThinMetadata::set_transaction_id(u64 current, u64 next)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	if (m_impl->trans_id != current)
		return err(EINVAL);
	m_impl->trans_id = next;
	return {};
}

u32 ThinMetadata::time()
{
	SharedGuard g(m_root_lock);
	return m_impl ? m_impl->time : 0;
}

Result<block_t> ThinMetadata::nr_metadata_blocks()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->meta_sm->nr_blocks();
}

Result<block_t> ThinMetadata::nr_free_metadata_blocks()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->meta_sm->nr_free();
}

Result<void> ThinMetadata::reserve_metadata_snap()
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	if (impl->held_root)
		return err(EBUSY);

	/* The copy must describe committed trees: commit, then copy that superblock. */
	TRY_OR_BREAK(impl, commit_impl(impl, false, m_data_block_size));

	/*
	 * A second reference makes the shadow a real copy; the manager moves
	 * that reference onto the copy, leaving block 0 at one.
	 */
	TRY_OR_BREAK(impl, impl->tm.inc(SUPERBLOCK_LOCATION));
	pdata::Shadow copy = TRY_OR_BREAK(
		impl, impl->tm.shadow_block(SUPERBLOCK_LOCATION, &superblock_validator()));
	DiskSuperblock sb;
	mem_copy(&sb, copy.block.data(), sizeof(sb));
	/* Nobody reopens space maps from the copy; their roots would only go stale. */
	mem_zero(sb.data_space_map_root, SPACE_MAP_ROOT_BYTES);
	mem_zero(sb.metadata_space_map_root, SPACE_MAP_ROOT_BYTES);
	sb.held_root = to_le64(0);
	mem_copy(copy.block.data(), &sb, sizeof(sb));
	block_t held = copy.block.location();
	copy.block.release();

	/* The copy keeps the committed trees alive while the pool changes its own. */
	TRY_OR_BREAK(impl, impl->tm.inc(from_le(sb.data_mapping_root)));
	TRY_OR_BREAK(impl, impl->tm.inc(from_le(sb.device_details_root)));
	impl->held_root = held;
	return {};
}

Result<void> ThinMetadata::release_metadata_snap()
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	Impl *impl = m_impl;
	block_t held = impl->held_root;
	if (!held)
		return err(EINVAL);
	DiskSuperblock sb;
	{
		ReadRef ref = TRY(impl->tm.read_lock(held, &superblock_validator()));
		mem_copy(&sb, ref.data(), sizeof(sb));
	}
	impl->held_root = 0;
	TRY_OR_BREAK(impl, impl->mapping.del(from_le(sb.data_mapping_root)));
	TRY_OR_BREAK(impl, impl->details.del(from_le(sb.device_details_root)));
	TRY_OR_BREAK(impl, impl->tm.dec(held));
	return {};
}

Result<block_t> ThinMetadata::metadata_snap()
{
	SharedGuard g(m_root_lock);
	CHECK_OPEN();
	return m_impl->held_root;
}

Result<void> ThinMetadata::resize_data(block_t nr)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	block_t old = TRY(m_impl->data_sm->nr_blocks());
	if (nr < old || nr > MAX_DATA_BLOCK)
		return err(EINVAL);
	if (nr == old)
		return {};
	return poison(m_impl->broken, m_impl->data_sm->extend(nr - old));
}

Result<void> ThinMetadata::resize_metadata(block_t nr)
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	block_t old = TRY(m_impl->meta_sm->nr_blocks());
	if (nr < old || nr > METADATA_MAX_BLOCKS || nr > TRY(m_dev.nr_blocks()))
		return err(EINVAL);
	if (nr == old)
		return {};
	return poison(m_impl->broken, m_impl->meta_sm->extend(nr - old));
}

Result<void> ThinMetadata::set_needs_check()
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	m_impl->flags |= SB_FLAG_NEEDS_CHECK;
	return poison(m_impl->broken, commit_impl(m_impl, false, m_data_block_size));
}

bool ThinMetadata::needs_check()
{
	SharedGuard g(m_root_lock);
	return m_impl && (m_impl->flags & SB_FLAG_NEEDS_CHECK);
}

Result<void> ThinMetadata::commit()
{
	Guard g(m_root_lock);
	CHECK_WRITABLE();
	return poison(m_impl->broken, commit_impl(m_impl, false, m_data_block_size));
}

Result<void> ThinMetadata::abort()
{
	Guard g(m_root_lock);
	return reopen(m_dev, m_cache_blocks, m_impl);
}

} // namespace dmxx::thin
