/*
 * Unit tests of lib/walbuf.c: a commit through it writes the WAL once,
 * what it commits is what a plain SQLite connection reads (large
 * transactions, rollbacks, checkpoints, a process that exits without
 * closing), and a failed WAL write fails the commit and stores nothing.
 *
 * A counting VFS, registered as the default before walbuf wraps it, sees
 * every write that reaches the file system and can fail the next one.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "walbuf.h"

#define T_ROWS     200          /* single-row commits per measurement */
#define T_BIG      (1 << 20)    /* bytes of one large blob */
#define T_CHILD    50           /* commits of the process that exits */

struct cfile {
	sqlite3_file base;
	sqlite3_file *real;         /* just after us */
	int wal;                    /* opened as a WAL file */
};

static sqlite3_vfs cvfs;
static sqlite3_vfs *cvfs_real;
static int cvfs_wal_writes;     /* writes to WAL files */
static int cvfs_fail_next;      /* fail the next WAL write (SQLITE_FULL) */

static char dir[64];
static char dbpath[128];

static int
c_close(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xClose(c->real);
}

static int
c_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xRead(c->real, p, n, off);
}

static int
c_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	struct cfile *c = (struct cfile *)f;

	if (c->wal) {
		if (cvfs_fail_next) {
			cvfs_fail_next = 0;
			return SQLITE_FULL;
		}
		cvfs_wal_writes++;
	}
	return c->real->pMethods->xWrite(c->real, p, n, off);
}

static int
c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xTruncate(c->real, size);
}

static int
c_sync(sqlite3_file *f, int flags)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xSync(c->real, flags);
}

static int
c_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xFileSize(c->real, size);
}

static int
c_lock(sqlite3_file *f, int l)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xLock(c->real, l);
}

static int
c_unlock(sqlite3_file *f, int l)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xUnlock(c->real, l);
}

static int
c_reserved(sqlite3_file *f, int *out)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xCheckReservedLock(c->real, out);
}

static int
c_control(sqlite3_file *f, int op, void *arg)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xFileControl(c->real, op, arg);
}

static int
c_sector(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xSectorSize(c->real);
}

static int
c_device(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xDeviceCharacteristics(c->real);
}

static int
c_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xShmMap(c->real, pg, sz, ext, pp);
}

static int
c_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xShmLock(c->real, off, n, flags);
}

static void
c_shm_barrier(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;

	c->real->pMethods->xShmBarrier(c->real);
}

static int
c_shm_unmap(sqlite3_file *f, int del)
{
	struct cfile *c = (struct cfile *)f;

	return c->real->pMethods->xShmUnmap(c->real, del);
}

static const sqlite3_io_methods c_io = {
	2, c_close, c_read, c_write, c_truncate, c_sync, c_size, c_lock,
	c_unlock, c_reserved, c_control, c_sector, c_device, c_shm_map,
	c_shm_lock, c_shm_barrier, c_shm_unmap, NULL, NULL
};

static int
c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *oflags)
{
	struct cfile *c = (struct cfile *)f;
	int rc;

	(void)vfs;
	memset(c, 0, sizeof(*c));
	c->real = (sqlite3_file *)(c + 1);
	c->wal = (flags & SQLITE_OPEN_WAL) != 0;
	rc = cvfs_real->xOpen(cvfs_real, name, c->real, flags, oflags);
	if (rc != SQLITE_OK) {
		if (c->real->pMethods != NULL)
			c->real->pMethods->xClose(c->real);
		return rc;
	}
	f->pMethods = &c_io;
	return SQLITE_OK;
}

static int
c_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	return cvfs_real->xDelete(cvfs_real, name, sync);
}

static int
c_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return cvfs_real->xAccess(cvfs_real, name, flags, out);
}

static int
c_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return cvfs_real->xFullPathname(cvfs_real, name, n, out);
}

static int
c_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return cvfs_real->xRandomness(cvfs_real, n, out);
}

static int
c_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return cvfs_real->xSleep(cvfs_real, us);
}

static int
c_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return cvfs_real->xCurrentTime(cvfs_real, out);
}

/* Make the counting VFS the default, then let walbuf wrap it. */
static void
register_vfs(void)
{
	if (cvfs_real != NULL)
		return;
	ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
	ck_assert_ptr_nonnull(cvfs_real = sqlite3_vfs_find(NULL));
	cvfs.iVersion = 1;
	cvfs.szOsFile = (int)sizeof(struct cfile) + cvfs_real->szOsFile;
	cvfs.mxPathname = cvfs_real->mxPathname;
	cvfs.zName = "check-count";
	cvfs.xOpen = c_open;
	cvfs.xDelete = c_delete;
	cvfs.xAccess = c_access;
	cvfs.xFullPathname = c_fullpath;
	cvfs.xRandomness = c_random;
	cvfs.xSleep = c_sleep;
	cvfs.xCurrentTime = c_time;
	ck_assert_int_eq(sqlite3_vfs_register(&cvfs, 1), SQLITE_OK);
	ck_assert_str_eq(walbuf_register(), WALBUF_VFS_NAME);
}

static void
setup(void)
{
	register_vfs();
	snprintf(dir, sizeof(dir), "%s", "/tmp/check_walbuf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/t.db", dir);
	cvfs_fail_next = 0;
}

static void
teardown(void)
{
	char p[160];
	const char *sfx[] = { "", "-wal", "-shm", "-journal" };
	size_t i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* A connection through walbuf (buffered) or straight to the counting VFS
 * (plain, as any other program would open the file). */
static sqlite3 *
open_db(int buffered)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, buffered ? WALBUF_VFS_NAME : NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode = WAL; "
	    "PRAGMA synchronous = NORMAL; CREATE TABLE IF NOT EXISTS "
	    "t(id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX IF NOT "
	    "EXISTS t_k ON t(k)", NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg != NULL ? msg : "");
}

static int64_t
sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* WAL writes for n single-row commits on db. */
static int
writes_for_commits(sqlite3 *db, int n)
{
	int i, before = cvfs_wal_writes;

	for (i = 0; i < n; i++)
		exec_ok(db, "INSERT INTO t(k, v) VALUES('row', randomblob(40))");
	return cvfs_wal_writes - before;
}

START_TEST(one_write_per_commit)
{
	sqlite3 *plain, *buf;
	int nplain, nbuf;

	plain = open_db(0);
	buf = open_db(1);
	/* No checkpoint in between, so that only commits write the WAL. */
	exec_ok(plain, "PRAGMA wal_autocheckpoint = 0");
	exec_ok(buf, "PRAGMA wal_autocheckpoint = 0");
	nplain = writes_for_commits(plain, T_ROWS);
	nbuf = writes_for_commits(buf, T_ROWS);
	/* Each commit changes the table and the index: two frames, four
	 * writes without walbuf. */
	ck_assert_int_ge(nplain, 4 * T_ROWS);
	ck_assert_int_eq(nbuf, T_ROWS);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t"), 2 * T_ROWS);
	/* After a checkpoint that restarts the log, still one, but for the
	 * new log's header, which SQLite syncs before the first frame. */
	exec_ok(buf, "PRAGMA wal_checkpoint(TRUNCATE)");
	nbuf = writes_for_commits(buf, T_ROWS);
	ck_assert_int_eq(nbuf, T_ROWS + 1);
	sqlite3_close(buf);
	sqlite3_close(plain);
}
END_TEST

START_TEST(plain_reader_sees_everything)
{
	sqlite3 *plain, *buf;
	sqlite3_stmt *st;
	unsigned char *big;
	int i;

	big = malloc(T_BIG);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < T_BIG; i++)
		big[i] = (unsigned char)(i * 7 + i / 4099);
	plain = open_db(0);
	buf = open_db(1);

	/* A transaction far larger than the buffer. */
	ck_assert_int_eq(sqlite3_prepare_v2(buf, "INSERT INTO t(k, v) "
	    "VALUES('big', ?1)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, big, T_BIG, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	exec_ok(buf, "BEGIN; INSERT INTO t(k, v) SELECT 'many', "
	    "randomblob(300) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
	    "SELECT x + 1 FROM c WHERE x < 2000) SELECT x FROM c); COMMIT");

	ck_assert_int_eq(sqlite3_prepare_v2(plain, "SELECT v FROM t WHERE "
	    "k = 'big'", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_bytes(st, 0), T_BIG);
	ck_assert_int_eq(memcmp(sqlite3_column_blob(st, 0), big, T_BIG), 0);
	sqlite3_finalize(st);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t WHERE "
	    "k = 'many'"), 2000);

	/* A rolled back transaction leaves nothing; the next one works. */
	exec_ok(buf, "BEGIN; INSERT INTO t(k, v) VALUES('gone', "
	    "randomblob(200000)); ROLLBACK");
	exec_ok(buf, "INSERT INTO t(k, v) VALUES('after', x'01')");
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t WHERE "
	    "k = 'gone'"), 0);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t WHERE "
	    "k = 'after'"), 1);

	/* Both write in turn; each sees the other's rows. */
	for (i = 0; i < 50; i++) {
		exec_ok(i % 2 ? plain : buf, "INSERT INTO t(k, v) "
		    "VALUES('turn', randomblob(100))");
		ck_assert_int_eq(sql_int(i % 2 ? buf : plain, "SELECT count(*) "
		    "FROM t WHERE k = 'turn'"), i + 1);
	}
	exec_ok(plain, "PRAGMA wal_checkpoint(TRUNCATE)");
	exec_ok(buf, "INSERT INTO t(k, v) VALUES('last', x'02')");
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t WHERE "
	    "k = 'last'"), 1);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM "
	    "pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	ck_assert_int_eq(sql_int(buf, "SELECT count(*) FROM "
	    "pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	sqlite3_close(buf);
	sqlite3_close(plain);
	free(big);
}
END_TEST

START_TEST(exit_without_close)
{
	sqlite3 *db;
	pid_t pid;
	int status, i;

	db = open_db(1);
	sqlite3_close(db);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		db = open_db(1);
		for (i = 0; i < T_CHILD; i++)
			if (sqlite3_exec(db, "INSERT INTO t(k, v) "
			    "VALUES('child', randomblob(64))", NULL, NULL,
			    NULL) != SQLITE_OK)
				_exit(1);
		_exit(0);       /* no close, no checkpoint */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	db = open_db(0);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM t WHERE "
	    "k = 'child'"), T_CHILD);
	sqlite3_close(db);
}
END_TEST

START_TEST(failed_write_fails_commit)
{
	sqlite3 *plain, *buf;
	int rc;

	plain = open_db(0);
	buf = open_db(1);
	exec_ok(buf, "INSERT INTO t(k, v) VALUES('ok', x'00')");
	cvfs_fail_next = 1;
	rc = sqlite3_exec(buf, "INSERT INTO t(k, v) VALUES('lost', x'00')",
	    NULL, NULL, NULL);
	ck_assert_int_eq(rc & 0xff, SQLITE_FULL);
	ck_assert_int_eq(cvfs_fail_next, 0);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t WHERE "
	    "k = 'lost'"), 0);
	exec_ok(buf, "INSERT INTO t(k, v) VALUES('again', x'00')");
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM t"), 2);
	ck_assert_int_eq(sql_int(plain, "SELECT count(*) FROM "
	    "pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
	sqlite3_close(buf);
	sqlite3_close(plain);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("walbuf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, one_write_per_commit);
	tcase_add_test(tc, plain_reader_sees_everything);
	tcase_add_test(tc, exit_without_close);
	tcase_add_test(tc, failed_write_fails_commit);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
