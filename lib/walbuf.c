/*
 * walbuf: gathered WAL writes (see walbuf.h).
 *
 * A WAL file opened through this VFS keeps a buffer of up to WALBUF_CAP
 * bytes.  A write that continues the buffered ones is appended to it;
 * anything else writes the buffer out first.  The buffer is written out:
 * - right after the page of a commit frame (a frame header whose
 *   "database size" field is not zero), so that the commit's own write
 *   fails the commit as it would without walbuf;
 * - in xShmBarrier of the database file, which SQLite calls after the
 *   frames are written and before it publishes the new wal-index header
 *   (walIndexWriteHdr): a second guard, should a later SQLite frame its
 *   writes differently;
 * - before any other operation on the WAL file (read, sync, truncate,
 *   size, file control, close), and when a write does not continue the
 *   buffer or would overflow it.
 * Other connections and processes find frames only through the wal-index
 * header, and only committed ones, so none can look for a frame that is
 * still in a buffer.  A write that fails loses the buffered frames, which
 * belong to the transaction that then fails.
 *
 * The database file is linked to its WAL file through
 * sqlite3_database_file_object() (SQLite 3.32); without that link a WAL
 * file is not buffered at all.  Both objects belong to one connection,
 * which SQLite uses from one thread at a time: no locking here.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <sqlite3.h>

#include "walbuf.h"

#define WALBUF_FRAME_HDR 24  /* bytes in a WAL frame header */
#define WALBUF_NTRUNC    4   /* offset of its "database size" field */

struct walbuf_file {
	sqlite3_file base;          /* pMethods: walbuf_io */
	sqlite3_file *real;         /* the wrapped file, just after us */
	struct walbuf_file *db;     /* WAL file: its database file */
	struct walbuf_file *wal;    /* database file: its open WAL file */
	unsigned char *buf;         /* WAL file: gathered writes, or NULL */
	int len;                    /* bytes in buf */
	sqlite3_int64 off;          /* file offset of buf[0] */
	int commit_page;            /* the next write is a commit's page */
};

static const sqlite3_io_methods walbuf_io;
static sqlite3_vfs walbuf_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;
static const char *walbuf_name;

static sqlite3_vfs *
walbuf_real_vfs(sqlite3_vfs *vfs)
{
	return vfs->pAppData;
}

static struct walbuf_file *
walbuf_of(sqlite3_file *f)
{
	return (struct walbuf_file *)f;
}

/* Write the buffer out.  The buffer is empty afterwards either way. */
static int
walbuf_flush(struct walbuf_file *w)
{
	int len = w->len;

	if (len == 0)
		return SQLITE_OK;
	w->len = 0;
	return w->real->pMethods->xWrite(w->real, w->buf, len, w->off);
}

static int
walbuf_close(sqlite3_file *f)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc, crc;

	rc = walbuf_flush(w);
	if (w->db != NULL && w->db->wal == w)
		w->db->wal = NULL;
	if (w->wal != NULL && w->wal->db == w)
		w->wal->db = NULL;
	sqlite3_free(w->buf);
	w->buf = NULL;
	crc = w->real->pMethods->xClose(w->real);
	return rc != SQLITE_OK ? rc : crc;
}

static int
walbuf_read(sqlite3_file *f, void *p, int amt, sqlite3_int64 off)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc;

	if ((rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	return w->real->pMethods->xRead(w->real, p, amt, off);
}

/* Whether p (amt bytes) is a frame header of a commit frame. */
static int
walbuf_is_commit_header(const unsigned char *p, int amt)
{
	return amt == WALBUF_FRAME_HDR && (p[WALBUF_NTRUNC] |
	    p[WALBUF_NTRUNC + 1] | p[WALBUF_NTRUNC + 2] |
	    p[WALBUF_NTRUNC + 3]) != 0;
}

static int
walbuf_write(sqlite3_file *f, const void *p, int amt, sqlite3_int64 off)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc, commit;

	if (w->buf == NULL)
		return w->real->pMethods->xWrite(w->real, p, amt, off);
	commit = w->commit_page;
	w->commit_page = walbuf_is_commit_header(p, amt);
	if (w->len > 0 && (off != w->off + w->len ||
	    amt > WALBUF_CAP - w->len) && (rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	if (amt > WALBUF_CAP)
		return w->real->pMethods->xWrite(w->real, p, amt, off);
	if (w->len == 0)
		w->off = off;
	memcpy(w->buf + w->len, p, (size_t)amt);
	w->len += amt;
	return commit ? walbuf_flush(w) : SQLITE_OK;
}

static int
walbuf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc;

	if ((rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	return w->real->pMethods->xTruncate(w->real, size);
}

static int
walbuf_sync(sqlite3_file *f, int flags)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc;

	if ((rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	return w->real->pMethods->xSync(w->real, flags);
}

static int
walbuf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc;

	if ((rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	return w->real->pMethods->xFileSize(w->real, size);
}

static int
walbuf_lock(sqlite3_file *f, int level)
{
	sqlite3_file *r = walbuf_of(f)->real;

	return r->pMethods->xLock(r, level);
}

static int
walbuf_unlock(sqlite3_file *f, int level)
{
	sqlite3_file *r = walbuf_of(f)->real;

	return r->pMethods->xUnlock(r, level);
}

static int
walbuf_check_reserved(sqlite3_file *f, int *out)
{
	sqlite3_file *r = walbuf_of(f)->real;

	return r->pMethods->xCheckReservedLock(r, out);
}

static int
walbuf_file_control(sqlite3_file *f, int op, void *arg)
{
	struct walbuf_file *w = walbuf_of(f);
	int rc;

	if ((rc = walbuf_flush(w)) != SQLITE_OK)
		return rc;
	return w->real->pMethods->xFileControl(w->real, op, arg);
}

static int
walbuf_sector_size(sqlite3_file *f)
{
	sqlite3_file *r = walbuf_of(f)->real;

	return r->pMethods->xSectorSize(r);
}

static int
walbuf_device(sqlite3_file *f)
{
	sqlite3_file *r = walbuf_of(f)->real;

	return r->pMethods->xDeviceCharacteristics(r);
}

static int
walbuf_shm_map(sqlite3_file *f, int page, int size, int extend,
    void volatile **pp)
{
	sqlite3_file *r = walbuf_of(f)->real;

	if (r->pMethods->iVersion < 2)
		return SQLITE_IOERR_SHMMAP;
	return r->pMethods->xShmMap(r, page, size, extend, pp);
}

static int
walbuf_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	sqlite3_file *r = walbuf_of(f)->real;

	if (r->pMethods->iVersion < 2)
		return SQLITE_IOERR_SHMLOCK;
	return r->pMethods->xShmLock(r, off, n, flags);
}

/* SQLite calls this between writing frames and publishing them.  An error
 * cannot be returned here; the commit frame's write already reported it
 * (see the top of the file), so this normally finds the buffer empty. */
static void
walbuf_shm_barrier(sqlite3_file *f)
{
	struct walbuf_file *w = walbuf_of(f);

	if (w->wal != NULL)
		(void)walbuf_flush(w->wal);
	if (w->real->pMethods->iVersion >= 2)
		w->real->pMethods->xShmBarrier(w->real);
}

static int
walbuf_shm_unmap(sqlite3_file *f, int del)
{
	sqlite3_file *r = walbuf_of(f)->real;

	if (r->pMethods->iVersion < 2)
		return SQLITE_OK;
	return r->pMethods->xShmUnmap(r, del);
}

static int
walbuf_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	sqlite3_file *r = walbuf_of(f)->real;

	*pp = NULL;
	if (r->pMethods->iVersion < 3)
		return SQLITE_OK;
	return r->pMethods->xFetch(r, off, amt, pp);
}

static int
walbuf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	sqlite3_file *r = walbuf_of(f)->real;

	if (r->pMethods->iVersion < 3)
		return SQLITE_OK;
	return r->pMethods->xUnfetch(r, off, p);
}

static const sqlite3_io_methods walbuf_io = {
	3,
	walbuf_close,
	walbuf_read,
	walbuf_write,
	walbuf_truncate,
	walbuf_sync,
	walbuf_file_size,
	walbuf_lock,
	walbuf_unlock,
	walbuf_check_reserved,
	walbuf_file_control,
	walbuf_sector_size,
	walbuf_device,
	walbuf_shm_map,
	walbuf_shm_lock,
	walbuf_shm_barrier,
	walbuf_shm_unmap,
	walbuf_fetch,
	walbuf_unfetch
};

static int
walbuf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
    int flags, int *oflags)
{
	sqlite3_vfs *real = walbuf_real_vfs(vfs);
	struct walbuf_file *w = walbuf_of(f);
	sqlite3_file *dbf = NULL;
	int rc;

	memset(w, 0, sizeof(*w));
	w->real = (sqlite3_file *)(w + 1);
#if SQLITE_VERSION_NUMBER >= 3032000
	if ((flags & SQLITE_OPEN_WAL) && name != NULL)
		dbf = sqlite3_database_file_object(name);
#endif
	/* Buffer only a WAL file whose database file is ours: the barrier
	 * guard needs the link. */
	if (dbf != NULL && dbf->pMethods == &walbuf_io &&
	    (w->buf = sqlite3_malloc(WALBUF_CAP)) == NULL)
		return SQLITE_NOMEM;
	rc = real->xOpen(real, name, w->real, flags, oflags);
	if (rc != SQLITE_OK) {
		if (w->real->pMethods != NULL)
			w->real->pMethods->xClose(w->real);
		sqlite3_free(w->buf);
		w->buf = NULL;
		return rc;
	}
	f->pMethods = &walbuf_io;
	if (w->buf != NULL) {
		w->db = walbuf_of(dbf);
		w->db->wal = w;
	}
	return SQLITE_OK;
}

static int
walbuf_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xDelete(r, name, sync);
}

static int
walbuf_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xAccess(r, name, flags, out);
}

static int
walbuf_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xFullPathname(r, name, n, out);
}

static void *
walbuf_dl_open(sqlite3_vfs *vfs, const char *name)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xDlOpen(r, name);
}

static void
walbuf_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	r->xDlError(r, n, msg);
}

static void
(*walbuf_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xDlSym(r, h, sym);
}

static void
walbuf_dl_close(sqlite3_vfs *vfs, void *h)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	r->xDlClose(r, h);
}

static int
walbuf_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xRandomness(r, n, out);
}

static int
walbuf_sleep(sqlite3_vfs *vfs, int us)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xSleep(r, us);
}

static int
walbuf_current_time(sqlite3_vfs *vfs, double *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xCurrentTime(r, out);
}

static int
walbuf_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);

	return r->xGetLastError != NULL ? r->xGetLastError(r, n, out) : 0;
}

static int
walbuf_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	sqlite3_vfs *r = walbuf_real_vfs(vfs);
	double d;
	int rc;

	if (r->iVersion >= 2 && r->xCurrentTimeInt64 != NULL)
		return r->xCurrentTimeInt64(r, out);
	rc = r->xCurrentTime(r, &d);
	*out = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

static void
walbuf_init(void)
{
	sqlite3_vfs *real;

	/* Built against or running on an SQLite without
	 * sqlite3_database_file_object(): not registered. */
	if (SQLITE_VERSION_NUMBER < 3032000 ||
	    sqlite3_libversion_number() < 3032000 ||
	    sqlite3_initialize() != SQLITE_OK ||
	    (real = sqlite3_vfs_find(NULL)) == NULL)
		return;
	walbuf_vfs.iVersion = 2;
	walbuf_vfs.szOsFile = (int)sizeof(struct walbuf_file) +
	    real->szOsFile;
	walbuf_vfs.mxPathname = real->mxPathname;
	walbuf_vfs.zName = WALBUF_VFS_NAME;
	walbuf_vfs.pAppData = real;
	walbuf_vfs.xOpen = walbuf_open;
	walbuf_vfs.xDelete = walbuf_delete;
	walbuf_vfs.xAccess = walbuf_access;
	walbuf_vfs.xFullPathname = walbuf_full_pathname;
	walbuf_vfs.xDlOpen = walbuf_dl_open;
	walbuf_vfs.xDlError = walbuf_dl_error;
	walbuf_vfs.xDlSym = walbuf_dl_sym;
	walbuf_vfs.xDlClose = walbuf_dl_close;
	walbuf_vfs.xRandomness = walbuf_randomness;
	walbuf_vfs.xSleep = walbuf_sleep;
	walbuf_vfs.xCurrentTime = walbuf_current_time;
	walbuf_vfs.xGetLastError = walbuf_last_error;
	walbuf_vfs.xCurrentTimeInt64 = walbuf_current_time64;
	if (sqlite3_vfs_register(&walbuf_vfs, 0) == SQLITE_OK)
		walbuf_name = WALBUF_VFS_NAME;
}

const char *
walbuf_register(void)
{
	(void)pthread_once(&walbuf_once, walbuf_init);
	return walbuf_name;
}
