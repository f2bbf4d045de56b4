/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C++ target type interface.
 *
 * A target is a class T. Its constructor-equivalent is
 *     static Result<T *> create(dm_target *ti, TableArgs &args);
 * which parses the table line (failing through args.fail(), which sets
 * ti->error) and returns a new T. DM then calls T's members through
 * TargetAdapter<T>, whose static functions have exactly the C signatures of
 * struct target_type; describe_target<T>() builds the descriptor at compile
 * time, so registration needs no static constructor and the map path has no
 * trampoline: DM calls TargetAdapter<T>::map, which inlines T::map.
 *
 * Required:  MapResult map(bio *)
 * Optional (detected with requires-expressions; absent means NULL in DM):
 *     EndioResult end_io(bio *, u8 *status)
 *     void status(StatusType, unsigned flags, StatusWriter &)
 *     Result<void> message(TableArgs &, StatusWriter &)
 *     void presuspend(), void postsuspend(), Result<void> preresume(), void resume()
 *     int iterate_devices(dmxx_iterate_fn, void *)
 *     void io_hints(queue_limits *)
 *     int prepare_ioctl(block_device **)
 * Per-bio data: `using PerBio = X;` in T sizes it; per_bio<T>(bio) finds it.
 */
#pragma once

#include <dmxx/bio.h>
#include <dmxx/new.h>
#include <dmxx/platform.h>
#include <dmxx/result.h>
#include <dmxx/status.h>
#include <dmxx/table_args.h>

namespace dmxx {

enum class MapResult : int {
	Submitted = DMXX_DM_MAPIO_SUBMITTED, /* the target took ownership */
	Remapped = DMXX_DM_MAPIO_REMAPPED,   /* DM submits the remapped bio */
	Requeue = DMXX_DM_MAPIO_REQUEUE,
	DelayRequeue = DMXX_DM_MAPIO_DELAY_REQUEUE,
	Kill = DMXX_DM_MAPIO_KILL,
};

enum class EndioResult : int {
	Done = DMXX_DM_ENDIO_DONE,
	Incomplete = DMXX_DM_ENDIO_INCOMPLETE,
	Requeue = DMXX_DM_ENDIO_REQUEUE,
};

struct TargetInfo {
	const char *name;
	unsigned version[3];
	unsigned long long features;
	/* IMA status: no target_name/target_version prefix (6.1's snapshot-origin reports nothing). */
	bool ima_silent = false;
};

template <typename T> struct PerBioSize {
	static constexpr unsigned value = 0;
};
template <typename T>
	requires requires { typename T::PerBio; }
struct PerBioSize<T> {
	static constexpr unsigned value = sizeof(typename T::PerBio);
};

/* The target's per-bio data, sized at construction by ti_configure<T>(). */
template <typename T> inline typename T::PerBio *per_bio(bio *b)
{
	return static_cast<typename T::PerBio *>(pf::per_bio_data(b, sizeof(typename T::PerBio)));
}

/* Apply @cfg to @ti, with per_io_data_size taken from T::PerBio. */
template <typename T> Result<void> ti_configure(dm_target *ti, dmxx_ti_config cfg)
{
	cfg.per_io_data_size = PerBioSize<T>::value;
	return from_errno_int(dmxx_ti_configure(ti, &cfg));
}

template <typename T, const TargetInfo &Info> struct TargetAdapter {
	static T *self(dm_target *ti) { return static_cast<T *>(pf::ti_private(ti)); }

	static int ctr(dm_target *ti, unsigned argc, char **argv)
	{
		TableArgs args(ti, argc, argv);
		auto r = T::create(ti, args);
		if (r.is_error())
			return r.error_code(); /* create() set ti->error through TableArgs */
		pf::ti_set_private(ti, r.value());
		return 0;
	}

	static void dtr(dm_target *ti)
	{
		delete self(ti);
		pf::ti_set_private(ti, nullptr);
	}

	static int map(dm_target *ti, bio *b) { return static_cast<int>(self(ti)->map(b)); }

	static int end_io(dm_target *ti, bio *b, unsigned char *status)
	{
		return static_cast<int>(self(ti)->end_io(b, status));
	}

	static void status(dm_target *ti, int type, unsigned flags, char *result, unsigned maxlen)
	{
		StatusWriter out(result, maxlen);
		auto st = static_cast<StatusType>(type);
		if (st == StatusType::Ima && !Info.ima_silent)
			out.emit("target_name=%s,target_version=%u.%u.%u", Info.name, Info.version[0],
				 Info.version[1], Info.version[2]);
		self(ti)->status(st, flags, out);
	}

	static int message(dm_target *ti, unsigned argc, char **argv, char *result, unsigned maxlen)
	{
		TableArgs args(ti, argc, argv, TableArgs::Mode::Message);
		StatusWriter out(result, maxlen);
		auto r = self(ti)->message(args, out);
		if (r.is_error())
			return r.error_code();
		return out.length() ? 1 : 0;
	}

	static void presuspend(dm_target *ti) { self(ti)->presuspend(); }
	static void postsuspend(dm_target *ti) { self(ti)->postsuspend(); }
	static int preresume(dm_target *ti) { return self(ti)->preresume().error_code(); }
	static void resume(dm_target *ti) { self(ti)->resume(); }

	static int prepare_ioctl(dm_target *ti, block_device **bdev)
	{
		return self(ti)->prepare_ioctl(bdev);
	}

	static int iterate_devices(dm_target *ti, dmxx_iterate_fn fn, void *data)
	{
		return self(ti)->iterate_devices(fn, data);
	}

	static void io_hints(dm_target *ti, queue_limits *limits) { self(ti)->io_hints(limits); }
};

/* The descriptor for T under @Info, built entirely at compile time. */
template <typename T, const TargetInfo &Info> consteval dmxx_target_desc describe_target()
{
	using A = TargetAdapter<T, Info>;
	dmxx_target_desc d{};
	d.name = Info.name;
	d.version[0] = Info.version[0];
	d.version[1] = Info.version[1];
	d.version[2] = Info.version[2];
	d.features = Info.features;
	d.ctr = &A::ctr;
	d.dtr = &A::dtr;
	d.map = &A::map;
	if constexpr (requires(T &t, bio *b, u8 *s) { t.end_io(b, s); })
		d.end_io = &A::end_io;
	if constexpr (requires(T &t, StatusWriter &w) { t.status(StatusType::Info, 0u, w); })
		d.status = &A::status;
	if constexpr (requires(T &t, TableArgs &a, StatusWriter &w) { t.message(a, w); })
		d.message = &A::message;
	if constexpr (requires(T &t) { t.presuspend(); })
		d.presuspend = &A::presuspend;
	if constexpr (requires(T &t) { t.postsuspend(); })
		d.postsuspend = &A::postsuspend;
	if constexpr (requires(T &t) { t.preresume(); })
		d.preresume = &A::preresume;
	if constexpr (requires(T &t) { t.resume(); })
		d.resume = &A::resume;
	if constexpr (requires(T &t, block_device **bd) { t.prepare_ioctl(bd); })
		d.prepare_ioctl = &A::prepare_ioctl;
	if constexpr (requires(T &t, dmxx_iterate_fn fn, void *p) { t.iterate_devices(fn, p); })
		d.iterate_devices = &A::iterate_devices;
	if constexpr (requires(T &t, queue_limits *l) { t.io_hints(l); })
		d.io_hints = &A::io_hints;
	return d;
}

/*
 * Register @n descriptors, all or none: on failure the ones already
 * registered are unregistered again. @regs receives the handles.
 */
Result<void> register_targets(const dmxx_target_desc *const *descs, dmxx_target_reg **regs,
			      unsigned n);
void unregister_targets(dmxx_target_reg **regs, unsigned n);

} // namespace dmxx
