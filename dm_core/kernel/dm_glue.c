// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel implementation of the device-mapper part of the porting interface:
 * table devices, ti fields set at construction, and target registration.
 *
 * Registration copies the core's dmxx_target_desc into a struct target_type
 * whose method pointers are the C++ entry points themselves, so DM calls
 * straight into C++ with no trampoline on the map path.
 */
#include <linux/device-mapper.h>
#include <linux/module.h>
#include <linux/slab.h>

#include <dmxx/platform.h>

int dmxx_dm_get_device(struct dm_target *ti, const char *path, struct dm_dev **out)
{
	return dm_get_device(ti, path, dm_table_get_mode(ti->table), out);
}

void dmxx_dm_put_device(struct dm_target *ti, struct dm_dev *dev)
{
	dm_put_device(ti, dev);
}

struct block_device *dmxx_dm_dev_bdev(struct dm_dev *dev)
{
	return dev->bdev;
}

const char *dmxx_dm_dev_name(struct dm_dev *dev)
{
	return dev->name;
}

void dmxx_ti_set_error(struct dm_target *ti, const char *msg)
{
	ti->error = (char *)msg;
}

const char *dmxx_ti_error(struct dm_target *ti)
{
	return ti->error;
}

int dmxx_ti_configure(struct dm_target *ti, const struct dmxx_ti_config *cfg)
{
	ti->num_flush_bios = cfg->num_flush_bios;
	ti->num_discard_bios = cfg->num_discard_bios;
	ti->num_secure_erase_bios = cfg->num_secure_erase_bios;
	ti->num_write_zeroes_bios = cfg->num_write_zeroes_bios;
	ti->per_io_data_size = cfg->per_io_data_size;
	ti->flush_supported = !!cfg->flush_supported;
	ti->discards_supported = !!cfg->discards_supported;
	if (cfg->max_io_len)
		return dm_set_target_max_io_len(ti, cfg->max_io_len);
	return 0;
}

unsigned dmxx_bio_target_nr(struct bio *bio)
{
	return dm_bio_get_target_bio_nr(bio);
}

void dmxx_dm_table_event(struct dm_target *ti)
{
	dm_table_event(ti->table);
}

struct dmxx_target_reg {
	struct target_type tt;
};

int dmxx_register_target(const struct dmxx_target_desc *d, struct dmxx_target_reg **out)
{
	struct dmxx_target_reg *reg;
	int r;

	reg = kzalloc(sizeof(*reg), GFP_KERNEL);
	if (!reg)
		return -ENOMEM;

	reg->tt.name = d->name;
	reg->tt.module = THIS_MODULE;
	memcpy(reg->tt.version, d->version, sizeof(reg->tt.version));
	reg->tt.features = d->features;
	reg->tt.ctr = d->ctr;
	reg->tt.dtr = d->dtr;
	reg->tt.map = d->map;
	reg->tt.end_io = (dm_endio_fn)d->end_io;
	reg->tt.presuspend = d->presuspend;
	reg->tt.postsuspend = d->postsuspend;
	reg->tt.preresume = d->preresume;
	reg->tt.resume = d->resume;
	reg->tt.status = (dm_status_fn)d->status;
	reg->tt.message = d->message;
	reg->tt.prepare_ioctl = d->prepare_ioctl;
	reg->tt.iterate_devices = (dm_iterate_devices_fn)d->iterate_devices;
	reg->tt.io_hints = d->io_hints;

	r = dm_register_target(&reg->tt);
	if (r) {
		kfree(reg);
		return r;
	}
	*out = reg;
	return 0;
}

void dmxx_unregister_target(struct dmxx_target_reg *reg)
{
	dm_unregister_target(&reg->tt);
	kfree(reg);
}
