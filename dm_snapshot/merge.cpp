// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot-merge: copy a snapshot's exceptions back into the origin, newest
 * first, a run of consecutive chunks at a time, while the merged view stays
 * readable and writable.
 *
 * One step: ask the store for the newest run; make every other snapshot of
 * the origin copy that range first (the origin is about to change under
 * them) and wait for those copies; mark the range as merging (new writes to
 * it queue up) and wait for writes already sent to its COW chunks; copy COW
 * to origin; flush the origin; drop the run from the store (durably) and
 * from the table; release the queued writes, which now go to the origin.
 *
 * A crash or a reload at any point restarts from what the store still
 * records, so the merge resumes where it stopped: a run is dropped from the
 * store only after its data is on the origin, and copying it again is
 * harmless. Suspend stops the worker between steps; resume restarts it.
 */
#include <dmxx/bio_list.h>
#include <dmxx/new.h>

#include "block_io.h"
#include "snapshot.h"

namespace dmxx::snap {

/* ---- the snapshot-merge target's I/O ------------------------------------------------------------ */

MapResult Snapshot::map_merge(bio *b)
{
	auto *pb = static_cast<SnapPerBio *>(pf::per_bio_data(b, sizeof(SnapPerBio)));
	TrackedChunks::init_node(&pb->node);

	if (bio_is_flush(b)) {
		/* Two flush bios: one for each device the merged view spans. */
		bio_set_dev(b, dmxx_bio_target_nr(b) ? m_cow : m_origin);
		return MapResult::Remapped;
	}
	if (bio_is_discard(b)) {
		/* Once merging, discards change nothing. */
		bio_complete(b, DMXX_BLK_STS_OK);
		return MapResult::Submitted;
	}
	chunk_t chunk = bio_sector(b) >> m_store->chunk_shift();
	bool write = bio_is_write(b);

	if (state() == SnapState::Valid) {
		Guard mg(m_merge_lock);
		ChunkLock lk(m_tables, chunk);
		chunk_t nc;
		if (m_tables.lookup_complete(chunk, &nc)) {
			if (write && chunk >= m_merging_first && chunk - m_merging_first < m_merging_count) {
				/* Being merged right now: goes to the origin after the copy. */
				bio_set_dev(b, m_origin);
				bio_list_add(m_merge_queued, b);
				return MapResult::Submitted;
			}
			remap_cow(b, chunk, chunk, nc);
			if (write)
				m_tracked.track(&pb->node, chunk); /* a merge of this chunk waits for it */
			return MapResult::Remapped;
		}
	}
	/* Not in the COW (or nothing to merge any more): the origin, like snapshot-origin. */
	bio_set_dev(b, m_origin);
	if (write)
		return origin_write(m_entry, b, WalkMode::Map);
	return MapResult::Remapped;
}

void Snapshot::merge_presuspend() { stop_merge(); }

void Snapshot::merge_resume()
{
	resume();
	start_merge();
}

/* ---- the merge worker ---------------------------------------------------------------------------- */

void Snapshot::start_merge()
{
	bool idle = false;
	if (m_merge_running.compare_exchange(idle, true))
		dmxx_queue_work(m_merge_wq, &m_merge_work.work);
}

void Snapshot::stop_merge()
{
	m_merge_stop.store(true);
	m_merge_idle.wait([this] { return !m_merge_running.load(); });
	m_merge_stop.store(false);
}

void Snapshot::merge_work_fn(dmxx_work *w) { reinterpret_cast<MergeWork *>(w)->snap->merge_loop(); }

void Snapshot::merge_loop()
{
	while (!m_merge_stop.load() && merge_step()) {
	}
	m_merge_running.store(false);
	m_merge_idle.wake_all();
}

/* Clear the merging range and release what queued behind it. */
void Snapshot::end_merge_range(bool failed)
{
	dmxx_bio_list queued;
	{
		Guard g(m_merge_lock);
		queued = m_merge_queued;
		m_merge_queued = {};
		m_merging_first = 0;
		m_merging_count = 0;
		if (failed)
			m_merge_failed.store(true);
	}
	while (bio *b = bio_list_pop(queued)) {
		if (failed)
			bio_complete(b, DMXX_BLK_STS_IOERR);
		else
			dmxx_submit_bio(b);
	}
}

namespace {
struct SyncCopy {
	CopyJob job;
	Completion done;
	int error = 0;
	static void finished(CopyJob *, int error, void *ctx)
	{
		auto *c = static_cast<SyncCopy *>(ctx);
		c->error = error;
		c->done.complete();
	}
};
} // namespace

/* One run merged; false when there is nothing left to do (or the merge failed). */
bool Snapshot::merge_step()
{
	if (state() != SnapState::Valid) {
		dmxx_log(DMXX_LOG_ERR, "snapshots: Snapshot is invalid: can't merge");
		return false;
	}
	chunk_t last_old, last_new;
	auto prepared = m_store->prepare_merge(&last_old, &last_new);
	if (prepared.is_error()) {
		dmxx_log(DMXX_LOG_ERR, "snapshots: Read error in exception store: shutting down merge");
		m_merge_failed.store(true);
		return false;
	}
	unsigned n = prepared.value();
	if (!n)
		return false; /* all merged */
	chunk_t first_old = last_old + 1 - n;
	chunk_t first_new = last_new + 1 - n;
	u32 shift = m_store->chunk_shift();
	sector_t dest = sector_t(first_old) << shift;
	sector_t bytes_sectors = sector_t(n) << shift;
	sector_t origin_size = dmxx_bdev_nr_sectors(m_origin);
	sector_t count = dest >= origin_size ? 0 : (origin_size - dest < bytes_sectors ? origin_size - dest : bytes_sectors);

	/* Other snapshots keep the origin's current data of this range first. */
	Registry *reg = g_registry;
	u64 seen = reg->pending_done.load(Order::Acquire);
	while (origin_write_extent(m_entry, dest, bytes_sectors)) {
		reg->pending_done_wait.wait([&] { return reg->pending_done.load(Order::Acquire) != seen; });
		seen = reg->pending_done.load(Order::Acquire);
	}

	{
		Guard g(m_merge_lock);
		m_merging_first = first_old;
		m_merging_count = n;
	}
	for (unsigned i = 0; i < n; i++)
		m_tracked.wait_idle(first_old + i);

	if (count) {
		SyncCopy c;
		m_engine.copy(&c.job, {m_cow, sector_t(first_new) << shift, count}, {m_origin, dest, 0},
			      &SyncCopy::finished, &c);
		c.done.wait();
		if (c.error) {
			dmxx_log(DMXX_LOG_ERR, "snapshots: %s error: shutting down merge.",
				 c.job.read_failed() ? "Read" : "Write");
			end_merge_range(true);
			return false;
		}
	}
	if (block_flush_sync(m_sync_bios, m_origin).is_error()) {
		dmxx_log(DMXX_LOG_ERR, "snapshots: Flush after merge failed: shutting down merge");
		end_merge_range(true);
		return false;
	}
	if (m_store->commit_merge(n).is_error()) {
		dmxx_log(DMXX_LOG_ERR, "snapshots: Write error in exception store: shutting down merge");
		end_merge_range(true);
		return false;
	}
	/* Newest first, so each chunk leaves its run at an end. */
	for (chunk_t c = first_old + n; c-- > first_old;) {
		CompleteException *spare = nullptr;
		for (;;) {
			Result<void> r = Result<void>();
			{
				ChunkLock lk(m_tables, c);
				r = m_tables.remove_complete(c, &spare);
			}
			if (r.is_ok())
				break;
			if (r.error_code() == -ENOMEM && !spare) {
				spare = new (AllocMode::NoIO) CompleteException{};
				if (spare)
					continue;
			}
			dmxx_log(DMXX_LOG_ERR,
				 "snapshots: Corruption detected: exception for block %llu is on disk but not in memory",
				 (unsigned long long)c);
			delete spare;
			end_merge_range(true);
			return false;
		}
		delete spare;
	}
	end_merge_range(false);
	return true;
}

} // namespace dmxx::snap
