// SPDX-License-Identifier: GPL-2.0
/*
 * dmxx-linear: a pass-through target with dm-linear's table syntax.
 *
 *   <dev_path> <offset>
 *
 * Maps sector s of the target to sector (offset + s - begin) of dev_path.
 * It exists to measure what the dmxx framework itself costs: the map path
 * is the same three stores dm-linear performs (device, sector) plus the
 * blkg association, with field offsets generated from the kernel's headers.
 *
 * Unlike dm-linear, the constructor also checks that offset + length fits
 * the device (DM core would reject it later, with a less direct message).
 */
#include <dmxx/passthrough_target.h>

#include <dmxx/target.h>

namespace dmxx {

class PassthroughTarget {
public:
	static Result<PassthroughTarget *> create(dm_target *ti, TableArgs &args);
	~PassthroughTarget();

	MapResult map(bio *b)
	{
		bio_set_dev(b, m_bdev);
		/* DM sends zero-length flushes with sector 0: remap them too, harmlessly. */
		bio_set_sector(b, bio_sector(b) + m_delta);
		return MapResult::Remapped;
	}

	void status(StatusType type, unsigned flags, StatusWriter &out);
	int prepare_ioctl(block_device **bdev);
	int iterate_devices(dmxx_iterate_fn fn, void *data);

private:
	PassthroughTarget(dm_target *ti, dm_dev *dev, sector_t start)
		: m_ti(ti), m_dev(dev), m_bdev(dmxx_dm_dev_bdev(dev)), m_start(start),
		  m_delta(start - pf::ti_begin(ti))
	{
	}

	dm_target *m_ti;
	dm_dev *m_dev;
	block_device *m_bdev;
	sector_t m_start;
	sector_t m_delta; /* start - ti->begin; unsigned wrap-around is intended */
};

Result<PassthroughTarget *> PassthroughTarget::create(dm_target *ti, TableArgs &args)
{
	TRY(args.expect_count(2, "Invalid argument count"));
	const char *path = TRY(args.next_string("Missing device path"));
	u64 start = TRY(args.next_u64("Invalid device sector"));

	dm_dev *dev = nullptr;
	int r = dmxx_dm_get_device(ti, path, &dev);
	if (r < 0)
		return args.fail("Device lookup failed", r);

	u64 dev_size = dmxx_bdev_nr_sectors(dmxx_dm_dev_bdev(dev));
	u64 len = pf::ti_len(ti);
	if (start > dev_size || len > dev_size - start) {
		dmxx_dm_put_device(ti, dev);
		return args.fail("Device too small for offset and length");
	}

	auto *t = new (AllocMode::Sleep) PassthroughTarget(ti, dev, start);
	if (!t) {
		dmxx_dm_put_device(ti, dev);
		return args.fail("Cannot allocate linear context", ENOMEM);
	}

	dmxx_ti_config cfg{};
	cfg.num_flush_bios = 1;
	cfg.num_discard_bios = 1;
	cfg.num_secure_erase_bios = 1;
	cfg.num_write_zeroes_bios = 1;
	auto configured = ti_configure<PassthroughTarget>(ti, cfg);
	if (configured.is_error()) {
		delete t;
		return args.fail("Cannot configure target", -configured.error_code());
	}
	return t;
}

PassthroughTarget::~PassthroughTarget() { dmxx_dm_put_device(m_ti, m_dev); }

void PassthroughTarget::status(StatusType type, unsigned, StatusWriter &out)
{
	switch (type) {
	case StatusType::Info:
		break;
	case StatusType::Table:
		out.emit("%s %llu", dmxx_dm_dev_name(m_dev), m_start);
		break;
	case StatusType::Ima:
		out.emit(",device_name=%s,start=%llu;", dmxx_dm_dev_name(m_dev), m_start);
		break;
	}
}

int PassthroughTarget::prepare_ioctl(block_device **bdev)
{
	*bdev = m_bdev;
	/* Pass ioctls through only if we cover the whole device. */
	if (m_start || pf::ti_len(m_ti) != dmxx_bdev_nr_sectors(m_bdev))
		return 1;
	return 0;
}

int PassthroughTarget::iterate_devices(dmxx_iterate_fn fn, void *data)
{
	return fn(m_ti, m_dev, m_start, pf::ti_len(m_ti), data);
}

constexpr TargetInfo passthrough_info = {
	.name = "dmxx-linear",
	.version = {1, 0, 0},
	.features = DMXX_TARGET_PASSES_INTEGRITY | DMXX_TARGET_NOWAIT | DMXX_TARGET_PASSES_CRYPTO,
};

constinit const dmxx_target_desc passthrough_desc =
	describe_target<PassthroughTarget, passthrough_info>();

} // namespace dmxx

/* Module entry points, called from the C module file. */
static dmxx_target_reg *passthrough_reg;

extern "C" int dmxx_passthrough_init(void)
{
	const dmxx_target_desc *descs[] = {&dmxx::passthrough_desc};
	return dmxx::register_targets(descs, &passthrough_reg, 1).error_code();
}

extern "C" void dmxx_passthrough_exit(void) { dmxx::unregister_targets(&passthrough_reg, 1); }
