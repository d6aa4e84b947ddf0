/*
 * walbuf: an SQLite VFS that writes a transaction's WAL frames with one
 * write instead of two per frame.
 *
 * SQLite writes each WAL frame as two pwrite() calls, the 24-byte frame
 * header and then the page.  A publish changes three or four pages, so a
 * commit costs six to eight such calls, more than the rest of the commit
 * where system calls are dear (virtual machines).  walbuf wraps the
 * default VFS and gathers the WAL writes that follow one another; the
 * database file and everything else pass straight through.  The files
 * stay ordinary SQLite files: other processes, with or without walbuf,
 * read and write them as usual.  Why no reader can see a frame still in
 * the buffer is in walbuf.c.
 */
#ifndef PUSHCGI_WALBUF_H
#define PUSHCGI_WALBUF_H

#define WALBUF_VFS_NAME "pushcgi-walbuf"
#define WALBUF_CAP      (64 * 1024)  /* bytes gathered before a write */

/*
 * Register the VFS (once per process; later calls return the first
 * result).  Returns WALBUF_VFS_NAME to pass to sqlite3_open_v2(), or NULL
 * when it cannot be used (out of memory, or an SQLite older than 3.32,
 * which cannot tell a WAL file's database): open with the default VFS
 * then.  Thread-safe.
 */
const char *walbuf_register(void);

#endif
