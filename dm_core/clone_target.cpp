// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx-clone: a pass-through target that clones every bio from its own BioSet.
 *
 *   <dev_path> <offset> [<#features> [split_sectors <n>]]
 *
 * Maps sector s of the target to sector (offset + s - begin) of dev_path, as
 * dmxx-linear does, but never remaps the bio DM hands it: every incoming bio
 * is cloned from the target's BioSet (bioset/), each clone is remapped and
 * submitted by the target, and the incoming bio is completed when all its
 * clones have completed, with the first error any clone reported. map()
 * always returns DM_MAPIO_SUBMITTED. It exists to exercise bio sets and
 * their rescuers in the kernel (tests/vm/bioset_rescue.sh) and to measure
 * what a bio set allocation per bio costs (scripts/bench, case `clone`).
 *
 * #features counts words, as in DM's own targets: "0", or
 * "2 split_sectors <n>": reads and writes are cut into clones of at most n
 * sectors (n >= 1, a multiple of the device's logical block size). Each
 * clone is allocated and SUBMITTED before the next is allocated: the rule
 * that makes the bio set's rescuer sufficient for forward progress inside
 * bio submission (see bioset/bioset.h). Without split_sectors each bio gets
 * exactly one clone.
 *
 * Flushes, discards, secure erase and write zeroes: passed through, each
 * bio as ONE whole clone (never split: they carry no data pages, and the
 * device below splits them to its own limits). DM sends PREFLUSH as a
 * separate empty bio (num_flush_bios = 1), so data bios never carry it;
 * FUA is kept on every piece.
 *
 * The bio set is created by the constructor from module parameters read at
 * table load (dm_core/kernel/module_linear.c):
 *   bioset_reserve        bios in the reserve (1..65536; default 16)
 *   bioset_force_reserve  1: the set never uses the allocator, only the
 *                         reserve (set_reserve_only), so a tiny reserve runs
 *                         dry and the rescuer really runs (default 0)
 *   bioset_rescuer        0: disarm the rescuer (RescuePolicy::None, the pre-2012
 *                         design that can deadlock once the reserve runs dry).
 *                         Only a baseline for scripts/bench's `rescuer` case, which
 *                         shows what arming it costs (default 1)
 *
 * Status:
 *   INFO   allocs=<n> rescues=<n> rescued_bios=<n> pool_waits=<n> reserve=<n> forced=<0|1>
 *          rescuer=<0|1>
 *          the bio set's counters (BioSet::Stats) since the table was loaded,
 *          then the reserve size, forced-reserve and rescuer switches it was built with
 *   TABLE  <major:minor> <offset>[ 2 split_sectors <n>]
 *   IMA    ,device_name=<major:minor>,start=<offset>,split_sectors=<n>;
 *
 * Table errors (ti->error), one per cause:
 *   Invalid argument count, Invalid device sector,
 *   Invalid number of feature arguments, Unknown feature argument,
 *   Missing split_sectors value, Invalid split_sectors,
 *   Device lookup failed, Device too small for offset and length,
 *   split_sectors not a multiple of the logical block size,
 *   Invalid bioset_reserve module parameter,
 *   Cannot allocate clone context, Cannot create bio set, Cannot configure target
 */
#include <dmxx/atomic.h>
#include <dmxx/clone_target.h>
#include <dmxx/params.h>
#include <dmxx/target.h>

#include "bioset.h"

namespace dmxx {

class CloneTarget {
public:
	/* Per incoming bio: its clones in flight (+1 while map runs) and the first error. */
	struct PerBio {
		Atomic<u32> remaining{1};
		Atomic<u32> status{0};
	};

	static constexpr unsigned reserve_default = 16;
	static constexpr unsigned reserve_max = 65536;

	static Result<CloneTarget *> create(dm_target *ti, TableArgs &args);
	~CloneTarget();

	MapResult map(bio *b)
	{
		auto *pb = new (in_place, per_bio<CloneTarget>(b)) PerBio();
		u32 op = bio_op(b);
		u32 total = bio_sectors(b);
		bool split = m_split && total > m_split &&
			     (op == DMXX_REQ_OP_READ || op == DMXX_REQ_OP_WRITE);
		if (!split) {
			submit_piece(b, pb, 0, 0);
		} else {
			/* One clone at a time: allocated, submitted, then the next. */
			for (u32 off = 0; off < total; off += m_split) {
				u32 left = total - off;
				if (!submit_piece(b, pb, off, left < m_split ? left : m_split))
					break;
			}
		}
		put(b, pb); /* drop map's own count: completes @b if every clone is done */
		return MapResult::Submitted;
	}

	void status(StatusType type, unsigned flags, StatusWriter &out);
	int prepare_ioctl(block_device **bdev);
	int iterate_devices(dmxx_iterate_fn fn, void *data);

private:
	CloneTarget(dm_target *ti, dm_dev *dev, sector_t start, u32 split, unsigned reserve,
		    bool forced, bool rescuer)
		: m_ti(ti), m_dev(dev), m_bdev(dmxx_dm_dev_bdev(dev)), m_start(start),
		  m_delta(start - pf::ti_begin(ti)), m_split(split), m_reserve(reserve),
		  m_forced(forced), m_rescuer(rescuer)
	{
	}

	/*
	 * Clone @sectors sectors of @b from @offset (0 sectors: the whole bio),
	 * remap and submit it. NoIO: may block in the bio set (the documented
	 * wait, with the rescuer armed); false if no clone could be made.
	 */
	bool submit_piece(bio *b, PerBio *pb, u32 offset, u32 sectors)
	{
		bio *c = m_bs.clone(b, m_bdev, AllocMode::NoIO, &CloneTarget::clone_done, b);
		if (!c) {
			set_error(pb, DMXX_BLK_STS_IOERR);
			return false;
		}
		if (sectors)
			dmxx_bio_trim(c, offset, sectors);
		bio_set_sector(c, bio_sector(c) + m_delta);
		pb->remaining.fetch_add(1, Order::Relaxed); /* before submit: it may complete at once */
		dmxx_submit_bio(c);
		return true;
	}

	static void set_error(PerBio *pb, u32 status)
	{
		u32 expected = 0;
		(void)pb->status.compare_exchange(expected, status, Order::AcqRel);
	}

	static void put(bio *orig, PerBio *pb)
	{
		if (pb->remaining.fetch_sub(1, Order::AcqRel) == 1)
			bio_complete(orig, u8(pb->status.load(Order::Acquire)));
	}

	/* Completion context: must not sleep. Frees the clone before completing @priv. */
	static void clone_done(bio *c, void *priv)
	{
		auto *orig = static_cast<bio *>(priv);
		u8 st = bio_status(c);
		BioSet::free(c);
		PerBio *pb = per_bio<CloneTarget>(orig);
		if (st)
			set_error(pb, st);
		put(orig, pb);
	}

	dm_target *m_ti;
	dm_dev *m_dev;
	block_device *m_bdev;
	sector_t m_start;
	sector_t m_delta; /* start - ti->begin; unsigned wrap-around is intended */
	u32 m_split;      /* 0: one clone per bio */
	unsigned m_reserve;
	bool m_forced;
	bool m_rescuer;
	BioSet m_bs;
};

static unsigned read_param(const char *name, unsigned fallback)
{
	unsigned v;
	return dmxx_param_read_uint(name, &v) == 0 ? v : fallback;
}

Result<CloneTarget *> CloneTarget::create(dm_target *ti, TableArgs &args)
{
	TRY(args.expect_count_between(2, 5, "Invalid argument count"));
	const char *path = TRY(args.next_string("Invalid argument count"));
	u64 start = TRY(args.next_u64("Invalid device sector"));

	u32 split = 0;
	if (args.remaining()) {
		unsigned nfeat = TRY(args.next_group(2, "Invalid number of feature arguments"));
		while (nfeat) {
			const char *name = TRY(args.next_string("Invalid number of feature arguments"));
			nfeat--;
			if (!str_eq_nocase(name, "split_sectors"))
				return args.fail("Unknown feature argument");
			if (!nfeat)
				return args.fail("Missing split_sectors value");
			split = TRY(args.next_u32("Invalid split_sectors", 1));
			nfeat--;
		}
		if (args.remaining())
			return args.fail("Invalid argument count");
	}

	unsigned reserve = read_param("bioset_reserve", reserve_default);
	bool forced = read_param("bioset_force_reserve", 0) != 0;
	bool rescuer = read_param("bioset_rescuer", 1) != 0;
	if (reserve < 1 || reserve > reserve_max)
		return args.fail("Invalid bioset_reserve module parameter");

	dm_dev *dev = nullptr;
	int r = dmxx_dm_get_device(ti, path, &dev);
	if (r < 0)
		return args.fail("Device lookup failed", r);

	block_device *bdev = dmxx_dm_dev_bdev(dev);
	u64 dev_size = dmxx_bdev_nr_sectors(bdev);
	u64 len = pf::ti_len(ti);
	if (start > dev_size || len > dev_size - start) {
		dmxx_dm_put_device(ti, dev);
		return args.fail("Device too small for offset and length");
	}
	unsigned lbs_sectors = dmxx_bdev_logical_block_size(bdev) >> 9;
	if (split && lbs_sectors > 1 && split % lbs_sectors) {
		dmxx_dm_put_device(ti, dev);
		return args.fail("split_sectors not a multiple of the logical block size");
	}

	auto *t = new (AllocMode::Sleep) CloneTarget(ti, dev, start, split, reserve, forced, rescuer);
	if (!t) {
		dmxx_dm_put_device(ti, dev);
		return args.fail("Cannot allocate clone context", ENOMEM);
	}
	/* Clones share the source's vecs: no inline vecs, no front pad. */
	auto made = t->m_bs.init("dmxx_clone_bs", reserve, 0, 0);
	if (made.is_error()) {
		delete t;
		return args.fail("Cannot create bio set", -made.error_code());
	}
	t->m_bs.set_reserve_only(forced);
	if (!rescuer)
		t->m_bs.set_rescue_policy(RescuePolicy::None);

	dmxx_ti_config cfg{};
	cfg.num_flush_bios = 1;
	cfg.num_discard_bios = 1;
	cfg.num_secure_erase_bios = 1;
	cfg.num_write_zeroes_bios = 1;
	auto configured = ti_configure<CloneTarget>(ti, cfg);
	if (configured.is_error()) {
		delete t;
		return args.fail("Cannot configure target", -configured.error_code());
	}
	return t;
}

/* DM has drained every bio (and so every clone) before the destructor runs. */
CloneTarget::~CloneTarget() { dmxx_dm_put_device(m_ti, m_dev); }

void CloneTarget::status(StatusType type, unsigned, StatusWriter &out)
{
	switch (type) {
	case StatusType::Info: {
		BioSet::Stats s = m_bs.stats();
		out.emit("allocs=%llu rescues=%llu rescued_bios=%llu pool_waits=%llu reserve=%u forced=%u rescuer=%u",
			 (unsigned long long)s.allocs, (unsigned long long)s.rescues,
			 (unsigned long long)s.rescued_bios, (unsigned long long)s.pool_waits,
			 m_reserve, m_forced ? 1u : 0u, m_rescuer ? 1u : 0u);
		break;
	}
	case StatusType::Table:
		out.emit("%s %llu", dmxx_dm_dev_name(m_dev), m_start);
		if (m_split)
			out.emit(" 2 split_sectors %u", m_split);
		break;
	case StatusType::Ima:
		out.emit(",device_name=%s,start=%llu,split_sectors=%u;", dmxx_dm_dev_name(m_dev),
			 m_start, m_split);
		break;
	}
}

int CloneTarget::prepare_ioctl(block_device **bdev)
{
	*bdev = m_bdev;
	/* Pass ioctls through only if we cover the whole device. */
	if (m_start || pf::ti_len(m_ti) != dmxx_bdev_nr_sectors(m_bdev))
		return 1;
	return 0;
}

int CloneTarget::iterate_devices(dmxx_iterate_fn fn, void *data)
{
	return fn(m_ti, m_dev, m_start, pf::ti_len(m_ti), data);
}

constexpr TargetInfo clone_info = {
	.name = "dmxx-clone",
	.version = {1, 0, 0},
	/* Not NOWAIT: map may block in the bio set. */
	.features = 0,
};

constinit const dmxx_target_desc clone_desc = describe_target<CloneTarget, clone_info>();

} // namespace dmxx

/* Module entry points, called from the C module file. */
static dmxx_target_reg *clone_reg;

extern "C" int dmxx_clone_init(void)
{
	const dmxx_target_desc *descs[] = {&dmxx::clone_desc};
	return dmxx::register_targets(descs, &clone_reg, 1).error_code();
}

extern "C" void dmxx_clone_exit(void) { dmxx::unregister_targets(&clone_reg, 1); }
