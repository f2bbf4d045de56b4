/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Read a whole pool's metadata into the XML model (userspace only): what
 * `dmxx-thin dump` prints and what the oracle tests compare with thin_dump.
 */
#pragma once

#include <string>

#include "metadata/thin_metadata.h"
#include "persistent/block_device.h"
#include "xml.h"

namespace dmxx::thin::tools {

/*
 * Fill @out from @md (the open transaction, including uncommitted changes).
 * @dev is read for the superblock fields ThinMetadata does not expose
 * (uuid, version, flags as stored). Returns 0 or a negative errno.
 */
int dump_pool(ThinMetadata &md, pdata::BlockDevice &dev, XmlPool &out);

} // namespace dmxx::thin::tools
