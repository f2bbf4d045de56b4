// SPDX-License-Identifier: GPL-2.0
/*
 * The three targets, with Linux 6.1's names, table syntax, ti->error
 * strings, status lines and versions:
 *
 *   snapshot-origin <origin>
 *   snapshot        <origin> <cow> <P|PO|N> <chunk_sectors> [<#features> <feature>...]
 *   snapshot-merge  (the same arguments)
 *
 * snapshot-origin passes reads and flushes through and makes every
 * snapshot copy what a write overwrites (origin_write.cpp). The other two
 * are a Snapshot (snapshot.h) with different map functions.
 */
#include <dmxx/target.h>

#include "snapshot.h"
#include "snapshot_module.h"

namespace dmxx::snap {

/* snapshot and snapshot-merge are built alike; the final type says which map they use. */
template <typename T> Result<T *> create_snapshot(dm_target *ti, TableArgs &args)
{
	if (args.total() < 4)
		return args.fail("requires 4 or more arguments");
	auto *t = new (AllocMode::Sleep) T(ti);
	if (!t)
		return args.fail("Cannot allocate private snapshot structure", ENOMEM);
	auto r = t->setup(args);
	if (r.is_error()) {
		delete t;
		return r.error();
	}
	return t;
}

class SnapshotTarget final : public Snapshot {
public:
	static Result<SnapshotTarget *> create(dm_target *ti, TableArgs &args)
	{
		return create_snapshot<SnapshotTarget>(ti, args);
	}
	MapResult map(bio *b) { return map_snapshot(b); }

private:
	friend Result<SnapshotTarget *> create_snapshot<SnapshotTarget>(dm_target *, TableArgs &);
	explicit SnapshotTarget(dm_target *ti) : Snapshot(ti, false) {}
};

class MergeTarget final : public Snapshot {
public:
	static Result<MergeTarget *> create(dm_target *ti, TableArgs &args)
	{
		return create_snapshot<MergeTarget>(ti, args);
	}
	MapResult map(bio *b) { return map_merge(b); }
	void presuspend() { merge_presuspend(); }
	void resume() { merge_resume(); }

private:
	friend Result<MergeTarget *> create_snapshot<MergeTarget>(dm_target *, TableArgs &);
	explicit MergeTarget(dm_target *ti) : Snapshot(ti, true) {}
};

class OriginTarget {
public:
	static Result<OriginTarget *> create(dm_target *ti, TableArgs &args)
	{
		if (args.total() != 1)
			return args.fail("origin: incorrect number of arguments");
		auto *o = new (AllocMode::Sleep) OriginTarget(ti);
		if (!o)
			return args.fail("Cannot allocate private origin structure", ENOMEM);
		const char *path = TRY(args.next_string("origin: incorrect number of arguments"));
		int r = dmxx_dm_get_device(ti, path, &o->m_dev);
		if (r < 0) {
			delete o;
			return args.fail("Cannot get target device", r);
		}
		o->m_bdev = dmxx_dm_dev_bdev(o->m_dev);
		auto entry = origin_get(o->m_bdev);
		if (entry.is_error()) {
			delete o;
			return args.fail("Cannot allocate private origin structure", ENOMEM);
		}
		o->m_entry = entry.value();
		dmxx_ti_config cfg{};
		cfg.num_flush_bios = 1;
		if (ti_configure<OriginTarget>(ti, cfg).is_error()) {
			delete o;
			return args.fail("Cannot configure target");
		}
		return o;
	}

	~OriginTarget()
	{
		if (m_entry)
			origin_put(m_entry);
		if (m_dev)
			dmxx_dm_put_device(m_ti, m_dev);
	}

	MapResult map(bio *b)
	{
		bio_set_dev(b, m_bdev);
		if (bio_is_flush(b) || !bio_is_write(b))
			return MapResult::Remapped;
		/* One chunk of the smallest-chunked snapshot per bio: one copy per snapshot to wait for. */
		u32 boundary = m_entry->min_chunk.load(Order::Acquire);
		if (boundary) {
			u32 avail = boundary - (u32(bio_sector(b)) & (boundary - 1));
			if (bio_sectors(b) > avail)
				pf::accept_partial_bio(b, avail);
		}
		return origin_write(m_entry, b, WalkMode::Map);
	}

	void status(StatusType type, unsigned, StatusWriter &out)
	{
		if (type == StatusType::Table)
			out.emit("%s", dmxx_dm_dev_name(m_dev));
	}

	int iterate_devices(dmxx_iterate_fn fn, void *data) { return fn(m_ti, m_dev, 0, pf::ti_len(m_ti), data); }

private:
	explicit OriginTarget(dm_target *ti) : m_ti(ti) {}

	dm_target *m_ti;
	dm_dev *m_dev = nullptr;
	block_device *m_bdev = nullptr;
	OriginEntry *m_entry = nullptr;
};

constexpr TargetInfo origin_info = {
	.name = "snapshot-origin", .version = {1, 9, 0}, .features = 0, .ima_silent = true};
constexpr TargetInfo snapshot_info = {.name = "snapshot", .version = {1, 16, 0}, .features = 0};
constexpr TargetInfo merge_info = {.name = "snapshot-merge", .version = {1, 5, 0}, .features = 0};

constinit const dmxx_target_desc origin_desc = describe_target<OriginTarget, origin_info>();
constinit const dmxx_target_desc snapshot_desc = describe_target<SnapshotTarget, snapshot_info>();
constinit const dmxx_target_desc merge_desc = describe_target<MergeTarget, merge_info>();

} // namespace dmxx::snap

static dmxx_target_reg *snapshot_regs[3];

extern "C" int dmxx_snapshot_init(void)
{
	using namespace dmxx::snap;
	auto r = registry_init(sizeof(PendingException));
	if (r.is_error())
		return r.error_code();
	const dmxx_target_desc *descs[] = {&snapshot_desc, &origin_desc, &merge_desc};
	auto reg = dmxx::register_targets(descs, snapshot_regs, 3);
	if (reg.is_error()) {
		registry_exit();
		return reg.error_code();
	}
	return 0;
}

extern "C" void dmxx_snapshot_exit(void)
{
	dmxx::unregister_targets(snapshot_regs, 3);
	dmxx::snap::registry_exit();
}
