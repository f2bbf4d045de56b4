// SPDX-License-Identifier: GPL-2.0
/*
 * Deadlock scenarios for bio sets, each run twice through the same harness
 * (harness/watchdog.h): the old design, which must be seen to STALL, and
 * the fixed one, which must complete (and use the rescuer). Each negative
 * control stalls by construction, not by timing: see each test's comment
 * for why no interleaving can make progress.
 */
#include "harness/watchdog.h"
#include "helpers.h"

#include <bioset.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

using namespace dmxx;
using dmxx::test::pattern;
using dmxx::test::Watchdog;
using dmxx::user::MemDisk;
using namespace std::chrono_literals;

namespace {

std::atomic<unsigned> g_disk_id{0};

std::unique_ptr<MemDisk> make_disk(sector_t sectors)
{
	return MemDisk::create("dl-mem" + std::to_string(g_disk_id.fetch_add(1)), sectors);
}

/*
 * A stacking driver that splits every bio into @pieces clones from ONE
 * BioSet, submitting each clone before allocating the next (the rule
 * bio sets rely on). The original completes when all clones have.
 */
class Splitter final : public block_device {
public:
	Splitter(const std::string &name, block_device *lower, BioSet *set, unsigned pieces)
		: block_device(name, 250, g_disk_id.fetch_add(1), 512), m_lower(lower), m_set(set), m_pieces(pieces)
	{
		set_nr_sectors(lower->nr_sectors());
	}

	void submit(bio *b) override
	{
		u32 sectors = b->bi_size >> 9;
		unsigned n = m_pieces < sectors ? m_pieces : sectors;
		auto *p = new Parent{b, {int(n)}, {DMXX_BLK_STS_OK}};
		u32 done = 0;
		for (unsigned i = 0; i < n; i++) {
			u32 len = i + 1 == n ? sectors - done : sectors / n;
			bio *c = m_set->clone(b, m_lower, AllocMode::NoIO, piece_done, p);
			if (!c)
				dmxx_fatal("Splitter: clone failed with a sleeping mode");
			dmxx_bio_trim(c, done, len);
			done += len;
			dmxx_submit_bio(c);
		}
	}

private:
	struct Parent {
		bio *orig;
		std::atomic<int> remaining;
		std::atomic<u8> status;
	};
	static void piece_done(bio *c, void *priv)
	{
		auto *p = static_cast<Parent *>(priv);
		u8 st = c->bi_status;
		BioSet::free(c);
		if (st != DMXX_BLK_STS_OK)
			p->status.store(st);
		if (p->remaining.fetch_sub(1) == 1) {
			bio *orig = p->orig;
			u8 s = p->status.load();
			delete p;
			bio_complete(orig, s);
		}
	}

	block_device *m_lower;
	BioSet *m_set;
	unsigned m_pieces;
};

/* Top-level bios, owned by the test, completing into a counter. */
struct TopIo {
	bio b{};
	std::vector<u8> data;
	std::atomic<int> *done;
	std::atomic<int> *errors;
};

void top_done(bio *b)
{
	auto *io = reinterpret_cast<TopIo *>(b);
	if (b->bi_status != DMXX_BLK_STS_OK)
		io->errors->fetch_add(1);
	io->done->fetch_add(1);
}

std::unique_ptr<TopIo> make_write(block_device *dev, sector_t sector, u32 sectors, unsigned seed,
				  std::atomic<int> *done, std::atomic<int> *errors)
{
	auto io = std::make_unique<TopIo>();
	io->data = pattern(sector, size_t(sectors) << 9, seed);
	io->b.bi_bdev = dev;
	io->b.bi_opf = DMXX_REQ_OP_WRITE;
	io->b.bi_sector = sector;
	io->b.bi_size = sectors << 9;
	io->b.bi_data = io->data.data();
	io->b.bi_end_io = top_done;
	io->done = done;
	io->errors = errors;
	return io;
}

class Deadlock : public dmxx::test::DmxxTest {};

/* ---- scenario 1: the 2012 bio set deadlock ------------------------------------------- */

struct Scenario1 {
	static constexpr unsigned threads = 4, per_thread = 16, sectors = 8, pieces = 4;
	std::unique_ptr<MemDisk> disk = make_disk(threads * per_thread * sectors);
	BioSet set;
	std::unique_ptr<Splitter> split;
	std::atomic<int> done{0}, errors{0}, exited{0};
	std::vector<std::unique_ptr<TopIo>> ios;
	std::vector<std::thread> workers;

	explicit Scenario1(RescuePolicy policy)
	{
		/* Two reserved bios, four pieces per bio: no bio can finish without the rescuer. */
		EXPECT_TRUE(set.init("s1-split", 2, 0, 0).is_ok());
		set.set_reserve_only(true);
		set.set_rescue_policy(policy);
		split = std::make_unique<Splitter>("s1-split", disk.get(), &set, pieces);
		for (unsigned t = 0; t < threads; t++)
			for (unsigned j = 0; j < per_thread; j++)
				ios.push_back(make_write(split.get(), (t * per_thread + j) * sectors, sectors, t + 1,
							 &done, &errors));
	}
	void start()
	{
		for (unsigned t = 0; t < threads; t++)
			workers.emplace_back([this, t] {
				user::set_thread_name("submitter-" + std::to_string(t));
				for (unsigned j = 0; j < per_thread; j++)
					dmxx_submit_bio(&ios[t * per_thread + j]->b);
				exited.fetch_add(1);
				Watchdog::poke();
			});
	}
	bool finished() const { return done.load() == int(threads * per_thread) && exited.load() == int(threads); }
	void join()
	{
		for (auto &w : workers)
			if (w.joinable())
				w.join();
	}
	/* A failed assertion must not leave threads stuck: unstall and join. */
	~Scenario1()
	{
		set.unstall();
		join();
	}
	void verify()
	{
		for (unsigned i = 0; i < threads * per_thread; i++) {
			std::vector<u8> got(sectors * 512);
			disk->read_raw(i * sectors, got.data(), got.size());
			ASSERT_EQ(got, ios[i]->data) << "bio " << i;
		}
	}
};

/*
 * None: a thread allocates piece 1 (reserve 2 -> 1), submits it (it waits
 * on the thread's bio_list[0] until submit() returns), allocates piece 2
 * (-> 0), and blocks for piece 3. Finishing any bio needs 4 bios at once
 * and the pool only ever holds 2, and a bio goes back to the pool only
 * after its submitter returns: every interleaving stalls, even 1 thread.
 */
TEST_F(Deadlock, Scenario1_NoRescuerStalls)
{
	Scenario1 s(RescuePolicy::None);
	Watchdog w(1000ms);
	w.watch(&s.set, "S");
	s.start();
	ASSERT_EQ(w.wait_for([&] { return s.finished(); }), Watchdog::Outcome::Stalled);
	const std::string d = w.dump();
	EXPECT_NE(d.find("BLOCKED in wait_sleep on [mempool of S] (inside submit_bio)"), std::string::npos) << d;
	EXPECT_NE(d.find("bio_list[0]: "), std::string::npos) << d;
	EXPECT_NE(d.find("([S])"), std::string::npos) << d; /* the pending clones are S's own */
	EXPECT_NE(d.find("bioset S: reserve 0/2"), std::string::npos) << d;
	EXPECT_EQ(s.set.stats().rescues, 0u);

	w.recover();
	ASSERT_EQ(w.wait_for([&] { return s.finished(); }), Watchdog::Outcome::Completed) << w.dump();
	s.join();
	EXPECT_EQ(s.errors.load(), 0);
}

TEST_F(Deadlock, Scenario1_PerSetRescuerCompletes)
{
	Scenario1 s(RescuePolicy::PerSet);
	Watchdog w;
	w.watch(&s.set, "S");
	s.start();
	auto r = w.wait_for([&] { return s.finished(); });
	if (r != Watchdog::Outcome::Completed) {
		w.recover();
		w.wait_for([&] { return s.finished(); });
	}
	ASSERT_EQ(r, Watchdog::Outcome::Completed) << w.dump();
	s.join();
	EXPECT_EQ(s.errors.load(), 0);
	s.verify();
	EXPECT_GT(s.set.stats().rescues, 0u);
	EXPECT_GT(s.set.stats().rescued_bios, 0u);
}

/* ---- scenarios 2 and 4: whose bios a rescuer may take --------------------------------- */

/*
 * U (set SU, plenty) splits into 2 over L (set SL: one reserved bio) which
 * splits into 2 over a disk. One thread submits one bio:
 *   U maps: U1, U2 from SU -> bio_list[0]. U1 is taken: [1] = {U2}.
 *   L maps U1: L1 from SL (reserve 1 -> 0) -> [0] = {L1}; L2: pool empty,
 *   bios pending -> punt, then wait for SL.
 * AllBios punts L1 AND U2 to SL's rescuer. The rescuer submits L1 (the
 * disk completes it, SL refills) and then U2, which is L's bio: L maps it
 * on the rescuer and needs two SL bios. Whoever gets the single SL bio
 * first, the rescuer ends up holding an SL bio on its own bio_list[0]
 * while it waits for another: its punt lands on its own rescue work item,
 * which cannot run while this run of it is blocked (work items are not
 * reentrant). Stalled in every interleaving.
 * PerSet and CurrentLevel punt only L1 ([0]); U2 stays with the submitter,
 * which maps it after L1 and L2 are done: completes.
 */
struct Scenario2 {
	std::unique_ptr<MemDisk> disk = make_disk(64);
	BioSet su, sl;
	std::unique_ptr<Splitter> lower, upper;
	std::atomic<int> done{0}, errors{0}, exited{0};
	std::unique_ptr<TopIo> io;
	std::thread submitter;

	explicit Scenario2(RescuePolicy sl_policy)
	{
		EXPECT_TRUE(su.init("s2-upper", 16, 0, 0).is_ok());
		EXPECT_TRUE(sl.init("s2-lower", 1, 0, 0).is_ok());
		sl.set_reserve_only(true);
		sl.set_rescue_policy(sl_policy);
		lower = std::make_unique<Splitter>("s2-L", disk.get(), &sl, 2);
		upper = std::make_unique<Splitter>("s2-U", lower.get(), &su, 2);
		io = make_write(upper.get(), 8, 16, 7, &done, &errors);
	}
	void start()
	{
		submitter = std::thread([this] {
			user::set_thread_name("submitter");
			dmxx_submit_bio(&io->b);
			exited.fetch_add(1);
			Watchdog::poke();
		});
	}
	bool finished() const { return done.load() == 1 && exited.load() == 1; }
	~Scenario2()
	{
		sl.unstall();
		su.unstall();
		if (submitter.joinable())
			submitter.join();
	}
	void verify()
	{
		std::vector<u8> got(16 * 512);
		disk->read_raw(8, got.data(), got.size());
		EXPECT_EQ(got, io->data);
	}
};

void scenario2_expect_stall(RescuePolicy policy)
{
	Scenario2 s(policy);
	Watchdog w(1000ms);
	w.watch(&s.su, "SU");
	w.watch(&s.sl, "SL");
	s.start();
	ASSERT_EQ(w.wait_for([&] { return s.finished(); }), Watchdog::Outcome::Stalled);
	const std::string d = w.dump();
	/* The rescuer itself is stuck allocating from its own set... */
	EXPECT_NE(d.find("running work [rescue work of SL]; BLOCKED in wait_sleep on [mempool of SL] (inside submit_bio)"),
		  std::string::npos)
		<< d;
	/* ...with its own punt queued behind its running self. */
	EXPECT_NE(d.find("queued: [rescue work of SL] (held back: already running)"), std::string::npos) << d;
	EXPECT_NE(d.find("bioset SL: reserve 0/1"), std::string::npos) << d;
	EXPECT_GE(s.sl.stats().rescues, 2u); /* the submitter's punt, then the rescuer's own */

	w.recover();
	ASSERT_EQ(w.wait_for([&] { return s.finished(); }), Watchdog::Outcome::Completed) << w.dump();
	s.submitter.join();
	EXPECT_EQ(s.errors.load(), 0);
	s.verify();
}

void scenario2_expect_complete(RescuePolicy policy)
{
	Scenario2 s(policy);
	Watchdog w;
	w.watch(&s.su, "SU");
	w.watch(&s.sl, "SL");
	s.start();
	auto r = w.wait_for([&] { return s.finished(); });
	if (r != Watchdog::Outcome::Completed) {
		w.recover();
		w.wait_for([&] { return s.finished(); });
	}
	ASSERT_EQ(r, Watchdog::Outcome::Completed) << w.dump();
	s.submitter.join();
	EXPECT_EQ(s.errors.load(), 0);
	s.verify();
	EXPECT_GT(s.sl.stats().rescues, 0u);
	EXPECT_EQ(s.su.stats().rescued_bios, 0u);
}

TEST_F(Deadlock, Scenario2_AllBiosRescuerWaitsOnItself) { scenario2_expect_stall(RescuePolicy::AllBios); }
TEST_F(Deadlock, Scenario2_PerSetCompletes) { scenario2_expect_complete(RescuePolicy::PerSet); }

/* Scenario 4: with depth-first submission, offloading list [0] (any set) is enough. */
TEST_F(Deadlock, Scenario4_CurrentLevelCompletes) { scenario2_expect_complete(RescuePolicy::CurrentLevel); }
TEST_F(Deadlock, Scenario4_BothListsStall) { scenario2_expect_stall(RescuePolicy::AllBios); }

/* ---- scenario 3: the 2017 DM case (seed 000) -------------------------------------------- */

/*
 * test-lockmap <dev>: map() of a bio at sector 0 ("Y") returns REQUEUE the
 * first time, so DM's worker maps it again; there it waits until the lock is
 * held, fails a trylock (announcing it), and blocks on the lock. map() of a
 * bio at sector 8 ("X") takes the lock, announces it, waits for the worker's
 * failed trylock, then splits X into two clones from the tiny set B under
 * the lock: clone 1 is submitted (pending on X's thread), clone 2 waits for
 * B, so clone 1 is punted to "the rescuer".
 * If the rescuer is DM's own worker (the shared md->rescued design), the
 * rescue is queued behind the worker, which waits for the lock, which X's
 * thread holds until clone 2 is allocated, which needs clone 1 submitted:
 * stalled, whatever the timing (every step before the cycle is ordered by
 * the two completions). With B's own rescuer: completes.
 */
struct LockMapCtx {
	std::mutex lock; /* the "snapshot lock" */
	dmxx_completion held, trylock_failed;
	BioSet set;
	std::atomic<int> y_maps{0};
	std::atomic<int> x_pieces{0};
};
LockMapCtx *g_lm;

int lm_ctr(dm_target *ti, unsigned argc, char **argv)
{
	if (argc != 1)
		return -EINVAL;
	dm_dev *dev;
	int r = dmxx_dm_get_device(ti, argv[0], &dev);
	if (r)
		return r;
	pf::ti_set_private(ti, dev);
	return 0;
}

void lm_dtr(dm_target *ti) { dmxx_dm_put_device(ti, static_cast<dm_dev *>(pf::ti_private(ti))); }

struct XState {
	bio *dm_clone;
	std::atomic<int> remaining{2};
};

void lm_piece_done(bio *c, void *priv)
{
	auto *x = static_cast<XState *>(priv);
	BioSet::free(c);
	if (x->remaining.fetch_sub(1) == 1) {
		bio *dm_clone = x->dm_clone;
		delete x;
		bio_complete(dm_clone, DMXX_BLK_STS_OK);
	}
}

int lm_map(dm_target *ti, bio *b)
{
	LockMapCtx &c = *g_lm;
	block_device *lower = dmxx_dm_dev_bdev(static_cast<dm_dev *>(pf::ti_private(ti)));
	if (bio_sector(b) == 0) {
		if (c.y_maps.fetch_add(1) == 0)
			return DMXX_DM_MAPIO_REQUEUE; /* to the worker */
		dmxx_wait_for_completion(&c.held);
		if (!c.lock.try_lock()) {
			dmxx_complete(&c.trylock_failed);
			user::BlockScope blocked("mutex_lock", &c.lock);
			c.lock.lock();
		}
		c.lock.unlock();
		bio_set_dev(b, lower);
		return DMXX_DM_MAPIO_REMAPPED;
	}
	std::lock_guard<std::mutex> g(c.lock);
	dmxx_complete(&c.held);
	dmxx_wait_for_completion(&c.trylock_failed);
	auto *x = new XState{b};
	u32 sectors = b->bi_size >> 9;
	for (int i = 0; i < 2; i++) {
		bio *p = c.set.clone(b, lower, AllocMode::NoIO, lm_piece_done, x);
		dmxx_bio_trim(p, i ? sectors / 2 : 0, sectors / 2);
		c.x_pieces.fetch_add(1);
		dmxx_submit_bio(p);
	}
	return DMXX_DM_MAPIO_SUBMITTED;
}

const dmxx_target_desc lm_desc = {.name = "test-lockmap", .version = {1, 0, 0}, .ctr = lm_ctr, .dtr = lm_dtr,
				  .map = lm_map};

void scenario3(bool shared_rescuer)
{
	LockMapCtx ctx;
	g_lm = &ctx;
	dmxx_completion_init(&ctx.held);
	dmxx_completion_init(&ctx.trylock_failed);
	ASSERT_TRUE(ctx.set.init("s3-target", 1, 0, 0).is_ok());
	ctx.set.set_reserve_only(true);
	dmxx_target_reg *reg;
	ASSERT_EQ(dmxx_register_target(&lm_desc, &reg), 0);
	{
		auto disk = make_disk(64);
		auto md = user::DmDevice::create("dl-s3", "0 64 test-lockmap " + disk->name());
		ASSERT_TRUE(md);
		if (shared_rescuer)
			ctx.set.set_rescue_workqueue_for_test(md->workqueue());

		Watchdog w(1000ms);
		w.watch(&ctx.set, "B");
		w.name(&ctx.lock, "snapshot lock");
		w.name(&ctx.held, "lock held");
		w.name(&ctx.trylock_failed, "worker trylock failed");
		w.name(md->deferred_work_item(), "dm worker of dl-s3");

		std::atomic<int> done{0}, errors{0}, exited{0};
		auto y = make_write(md.get(), 0, 8, 1, &done, &errors);
		auto x = make_write(md.get(), 8, 8, 2, &done, &errors);
		std::thread submitter([&] {
			user::set_thread_name("submitter");
			dmxx_submit_bio(&y->b); /* requeued to the worker */
			dmxx_submit_bio(&x->b);
			exited.fetch_add(1);
			Watchdog::poke();
		});
		auto finished = [&] { return done.load() == 2 && exited.load() == 1; };
		auto r = w.wait_for(finished);
		if (shared_rescuer) {
			EXPECT_EQ(r, Watchdog::Outcome::Stalled);
			const std::string d = w.dump();
			EXPECT_NE(d.find("running work [dm worker of dl-s3]; BLOCKED in mutex_lock on [snapshot lock]"),
				  std::string::npos)
				<< d;
			EXPECT_NE(d.find("thread submitter: BLOCKED in wait_sleep on [mempool of B] (inside submit_bio)"),
				  std::string::npos)
				<< d;
			EXPECT_NE(d.find("queued: [rescue work of B]"), std::string::npos) << d;
			EXPECT_NE(d.find("bioset B: reserve 0/1, waiters 1, rescue backlog 1"), std::string::npos) << d;
			w.recover();
			r = w.wait_for(finished);
		} else if (r != Watchdog::Outcome::Completed) {
			const std::string first = w.dump();
			w.recover();
			w.wait_for(finished);
			ADD_FAILURE() << "fixed design did not complete:\n" << first;
		}
		EXPECT_EQ(r, Watchdog::Outcome::Completed) << w.dump();
		submitter.join();
		EXPECT_EQ(errors.load(), 0);
		EXPECT_EQ(ctx.x_pieces.load(), 2);
		EXPECT_EQ(ctx.y_maps.load(), 2);
		EXPECT_GT(ctx.set.stats().rescues, 0u);
		std::vector<u8> got(16 * 512), want = y->data;
		want.insert(want.end(), x->data.begin(), x->data.end());
		disk->read_raw(0, got.data(), got.size());
		EXPECT_EQ(got, want);
		md.reset(); /* drains the worker, which ran any rescue queued on it */
		ctx.set.set_rescue_workqueue_for_test(nullptr);
	}
	dmxx_unregister_target(reg);
	dmxx_completion_destroy(&ctx.held);
	dmxx_completion_destroy(&ctx.trylock_failed);
	g_lm = nullptr;
}

TEST_F(Deadlock, Scenario3_DmWorkerAsRescuerStalls) { scenario3(true); }
TEST_F(Deadlock, Scenario3_PerSetRescuerCompletes) { scenario3(false); }

} // namespace
