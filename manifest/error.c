/* One description for every code a manifest function can return. */
#include <string.h>

#include "edgesync/manifest.h"

const char *es_manifest_strerror(int err)
{
	const char *s;

	switch ((enum es_manifest_err)err) {
	case ES_E_MANIFEST_NEWER:
		return "manifest schema is newer than this edgesync";
	case ES_E_MANIFEST_CORRUPT:
		return "manifest database is damaged";
	case ES_E_MANIFEST_EXISTS:
		return "manifest already records that name or id";
	case ES_E_MANIFEST_NOTFOUND:
		return "no such collection or segment in the manifest";
	case ES_E_MANIFEST_STATE:
		return "segment state does not allow that change";
	case ES_E_MANIFEST_NAME:
		return "collection name is not [a-z0-9_-]{1,64}";
	case ES_E_MANIFEST_SQL:
		return "manifest database (SQLite) failure";
	case ES_E_MANIFEST_FOREIGN:
		return "database is not an edgesync manifest";
	}
	if (err < 0 && err > -4096) {
		s = strerrordesc_np(-err);
		return s ? s : "unknown errno";
	}
	return "unknown error";
}
