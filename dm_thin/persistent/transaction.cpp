// SPDX-License-Identifier: GPL-2.0
/*
 * The shadowing transaction manager. See transaction.h for the design.
 *
 * Every space-map call is made with no lock of ours held and with no block
 * of the space map's own locked by us, because the metadata space map
 * re-enters this manager (to shadow its bitmaps) from inside new_block(),
 * inc() and dec().
 */
#include "persistent/transaction.h"

#include <dmxx/mem.h>
#include <dmxx/platform.h>

namespace dmxx::pdata {

TransactionManager::TransactionManager(BlockCache &cache) : m_cache(cache) {}

TransactionManager::TransactionManager(TransactionManager &real, CloneMode mode)
	: m_cache(real.m_cache), m_sm(real.m_sm), m_real(&real), m_clone(true),
	  m_non_blocking(mode == CloneMode::NonBlocking)
{
}

TransactionManager::~TransactionManager() = default;

Result<void> TransactionManager::init()
{
	/* Size the shadow set now, so the first transaction's inserts rarely allocate. */
	TRY(m_shadows.insert(0));
	m_shadows.erase(0);
	return {};
}

bool TransactionManager::is_shadow(block_t b) const { return m_shadows.contains(b); }

Result<WriteRef> TransactionManager::new_block(const BlockValidator *v)
{
	if (m_clone)
		return err(EPERM);
	if (!m_sm)
		return err(EINVAL);
	block_t b = TRY(m_sm->new_block());
	auto inserted = m_shadows.insert(b);
	if (inserted.is_error()) {
		(void)m_sm->dec(b);
		return inserted.error();
	}
	auto w = m_cache.write_lock_zero(b, v);
	if (w.is_error()) {
		m_shadows.erase(b);
		(void)m_sm->dec(b);
		return w.error();
	}
	m_stats.new_blocks++;
	return w.release_value();
}

Result<Shadow> TransactionManager::shadow_block(block_t orig, const BlockValidator *v)
{
	if (m_clone)
		return err(EPERM);
	if (!m_sm)
		return err(EINVAL);

	bool shared = TRY(m_sm->count_is_more_than_one(orig));
	if (!shared && m_shadows.contains(orig)) {
		/* Ours alone, and new in this transaction: the last commit cannot see it. */
		WriteRef w = TRY(m_cache.write_lock(orig, v));
		m_stats.shadow_in_place++;
		return Shadow{move(w), false};
	}

	block_t copy = TRY(m_sm->new_block());
	WriteRef w;
	{
		auto orig_ref = m_cache.read_lock(orig, v);
		if (orig_ref.is_error()) {
			(void)m_sm->dec(copy);
			return orig_ref.error();
		}
		auto copy_ref = m_cache.write_lock_zero(copy, v);
		if (copy_ref.is_error()) {
			(void)m_sm->dec(copy);
			return copy_ref.error();
		}
		w = copy_ref.release_value();
		mem_copy(w.data(), orig_ref.value().data(), METADATA_BLOCK_SIZE);
	}
	auto inserted = m_shadows.insert(copy);
	if (inserted.is_error()) {
		w.release();
		(void)m_sm->dec(copy);
		return inserted.error();
	}
	/* The caller's reference moves from @orig to the copy. */
	auto r = m_sm->dec(orig);
	if (r.is_error())
		return r.error();
	m_stats.shadow_copies++;
	return Shadow{move(w), shared};
}

Result<ReadRef> TransactionManager::read_lock(block_t b, const BlockValidator *v)
{
	if (m_non_blocking)
		return m_cache.read_try_lock(b, v);
	return m_cache.read_lock(b, v);
}

Result<void> TransactionManager::inc(block_t b)
{
	if (m_clone)
		return err(EPERM);
	return m_sm->inc(b);
}

Result<void> TransactionManager::dec(block_t b)
{
	if (m_clone)
		return err(EPERM);
	return m_sm->dec(b);
}

Result<u32> TransactionManager::ref_count(block_t b)
{
	if (m_non_blocking)
		return err(EAGAIN);
	return m_sm->get_count(b);
}

Result<bool> TransactionManager::is_shared(block_t b)
{
	if (m_non_blocking)
		return err(EAGAIN);
	return m_sm->count_is_more_than_one(b);
}

Result<void> TransactionManager::pre_commit()
{
	if (m_clone)
		return err(EPERM);
	if (!m_sm)
		return err(EINVAL);
	TRY(m_sm->commit());
	return m_cache.flush();
}

Result<void> TransactionManager::commit(WriteRef superblock)
{
	if (m_clone)
		return err(EPERM);
	if (!superblock.valid())
		return err(EINVAL);
	block_t sb = superblock.location();
	m_shadows.clear();
	/* Everything but the superblock durable first... */
	auto r = m_cache.flush(sb);
	if (r.is_error()) {
		/* It must not reach the disk with some of its blocks missing. */
		superblock.forget();
		return r.error();
	}
	/* ...then the superblock, alone, and durable too. */
	superblock.release();
	TRY(m_cache.flush());
	m_stats.commits++;
	return {};
}

Result<void> TransactionManager::abort()
{
	if (m_clone)
		return err(EPERM);
	m_shadows.clear();
	return m_cache.discard_all();
}

} // namespace dmxx::pdata
