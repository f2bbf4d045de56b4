// SPDX-License-Identifier: GPL-2.0
#include "bioset.h"

#include <dmxx/bio_list.h>

namespace dmxx {

/* Sits right before the bio, so the bio finds it without knowing the front pad. */
struct BioSet::Header {
	BioSet *set;
	BioEndFn done;
	void *priv;
	void *element; /* start of the mempool element */
};

static constexpr unsigned align_up(unsigned v, unsigned a) { return (v + a - 1) & ~(a - 1); }

/*
 * bi_end_io of every bio from a BioSet. Its address also marks a bio as
 * ours when the rescuer sorts a pending list that holds bios of any origin.
 */
void bioset_end_io(bio *b)
{
	auto *h = reinterpret_cast<BioSet::Header *>(reinterpret_cast<u8 *>(b) - sizeof(BioSet::Header));
	h->done(b, h->priv);
}

Result<void> BioSet::init(const char *name, unsigned pool_size, unsigned front_pad,
			  unsigned inline_vecs)
{
	static_assert(sizeof(Header) == header_bytes, "header_bytes is the header's size");
	m_front_pad = front_pad;
	m_inline_vecs = inline_vecs;
	m_header_off = align_up(front_pad, alignof(Header));
	m_bio_off = m_header_off + unsigned(sizeof(Header));
	usize size = m_bio_off + DMXX_BIO_STRUCT_SIZE + usize(inline_vecs) * DMXX_BVEC_SIZE;
	TRY(m_pool.init(size, pool_size));
	TRY(m_allocs.init());

	m_rescue_work.set = this;
	dmxx_work_init(&m_rescue_work.work, &BioSet::rescue_work_fn);
	m_rescue_wq = dmxx_wq_create(name, DMXX_WQ_MEM_RECLAIM);
	if (!m_rescue_wq)
		return err(ENOMEM);
	return {};
}

BioSet::~BioSet()
{
	if (m_rescue_wq)
		dmxx_wq_destroy(m_rescue_wq); /* drains: every rescued bio was submitted */
}

BioSet *BioSet::owner(const bio *b)
{
	if (pf::bio_end_io(b) != &bioset_end_io)
		return nullptr;
	return reinterpret_cast<const Header *>(reinterpret_cast<const u8 *>(b) - sizeof(Header))->set;
}

void *BioSet::front(bio *b) const { return reinterpret_cast<u8 *>(b) - m_bio_off; }

void BioSet::punt_to_rescuer()
{
	dmxx_bio_list *lists = dmxx_current_bio_lists();
	dmxx_bio_list punt = {};
	/*
	 * Pop everything, keep the order of what stays. Lists are singly
	 * linked: rebuilding is simpler and as cheap as unlinking in place.
	 */
	int nlists = m_policy == RescuePolicy::CurrentLevel ? 1 : 2;
	bool any_set = m_policy == RescuePolicy::AllBios || m_policy == RescuePolicy::CurrentLevel;
	for (int i = 0; i < nlists; i++) {
		dmxx_bio_list keep = {};
		bio *b = lists[i].head;
		while (b) {
			bio *next = pf::bio_next(b);
			bool ours = any_set || owner(b) == this;
			bio_list_add(ours ? punt : keep, b);
			b = next;
		}
		lists[i] = keep;
	}
	if (!punt.head)
		return;
	u64 n = 0; /* counted before the merge empties punt */
	for (bio *b = punt.head; b; b = pf::bio_next(b))
		n++;
	{
		Guard g(m_rescue_lock);
		bio_list_merge(m_rescue_list, punt);
	}
	m_rescues.fetch_add(1, Order::Relaxed);
	m_rescued_bios.fetch_add(n, Order::Relaxed);
	dmxx_queue_work(m_rescue_target ? m_rescue_target : m_rescue_wq, &m_rescue_work.work);
}

void BioSet::rescue_work_fn(dmxx_work *w)
{
	BioSet *set = reinterpret_cast<RescueWork *>(w)->set;
	for (;;) {
		bio *b;
		{
			Guard g(set->m_rescue_lock);
			b = bio_list_pop(set->m_rescue_list);
		}
		if (!b)
			return;
		dmxx_submit_bio(b);
	}
}

void *BioSet::alloc_element(AllocMode mode)
{
	bool may_sleep = mode == AllocMode::Sleep || mode == AllocMode::NoIO;
	dmxx_bio_list *lists = dmxx_current_bio_lists();
	bool pending = lists && (lists[0].head || lists[1].head);
	if (!may_sleep || !pending || m_policy == RescuePolicy::None)
		return m_pool.alloc(mode);

	/* Bios we may be holding up are pending: the first try must not block. */
	if (void *e = m_pool.alloc(AllocMode::NoWait))
		return e;
	punt_to_rescuer();
	return m_pool.alloc(mode);
}

bio *BioSet::setup(void *element, BioEndFn done, void *priv)
{
	auto *h = reinterpret_cast<Header *>(static_cast<u8 *>(element) + m_header_off);
	h->set = this;
	h->done = done;
	h->priv = priv;
	h->element = element;
	m_allocs.add(1);
	return reinterpret_cast<bio *>(static_cast<u8 *>(element) + m_bio_off);
}

bio *BioSet::alloc(block_device *bdev, u32 opf, unsigned nr_vecs, AllocMode mode, BioEndFn done,
		   void *priv)
{
	if (nr_vecs > m_inline_vecs)
		return nullptr;
	void *e = alloc_element(mode);
	if (!e)
		return nullptr;
	bio *b = setup(e, done, priv);
	dmxx_bio_init(b, bdev, reinterpret_cast<u8 *>(b) + DMXX_BIO_STRUCT_SIZE, u16(m_inline_vecs), opf);
	pf::bio_set_end_io(b, &bioset_end_io);
	return b;
}

bio *BioSet::clone(bio *src, block_device *bdev, AllocMode mode, BioEndFn done, void *priv)
{
	void *e = alloc_element(mode);
	if (!e)
		return nullptr;
	bio *b = setup(e, done, priv);
	if (dmxx_bio_init_clone(b, src, bdev, static_cast<dmxx_alloc_mode>(mode)) < 0) {
		m_pool.free(e);
		return nullptr;
	}
	pf::bio_set_end_io(b, &bioset_end_io);
	return b;
}

void BioSet::free(bio *b)
{
	auto *h = reinterpret_cast<Header *>(reinterpret_cast<u8 *>(b) - sizeof(Header));
	dmxx_bio_uninit(b);
	h->set->m_pool.free(h->element);
}

unsigned BioSet::rescue_backlog() const
{
	Guard g(m_rescue_lock);
	unsigned n = 0;
	for (bio *b = m_rescue_list.head; b; b = pf::bio_next(b))
		n++;
	return n;
}

BioSet::Stats BioSet::stats() const
{
	return {m_allocs.sum(), m_rescues.load(Order::Relaxed),
		m_rescued_bios.load(Order::Relaxed), m_pool.waits()};
}

} // namespace dmxx
