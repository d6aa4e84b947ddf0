/*
 * pqdl: libpq, loaded when a PostgreSQL log is first opened.
 *
 * libpq brings some twenty shared libraries with it (TLS, Kerberos,
 * LDAP...): linked into every program, their loading would cost each
 * start of a CGI responder or of pushctl several milliseconds (measured:
 * 1.4 ms a pushctl start without it, 4.8-5.3 ms with it), whether its log
 * is SQLite or not.  So the programs do not link libpq: pglog.c calls it
 * through the pointers below, which pqdl_load() fills from
 * PQDL_LIBRARY (dlopen) the first time a PostgreSQL log is opened.
 *
 * Include after <libpq-fe.h>, in pglog.c only: the macros below turn its
 * PQ* calls into calls through pqdl.
 */
#ifndef PUSHCGI_PQDL_H
#define PUSHCGI_PQDL_H

#include <stddef.h>

#include <libpq-fe.h>

#define PQDL_LIBRARY "libpq.so.5"

struct pqdl {
	void (*clear)(PGresult *);
	char *(*cmdTuples)(PGresult *);
	PGconn *(*connectdb)(const char *);
	int (*consumeInput)(PGconn *);
	char *(*errorMessage)(const PGconn *);
	PGresult *(*exec)(PGconn *, const char *);
	PGresult *(*execPrepared)(PGconn *, const char *, int,
	    const char *const *, const int *, const int *, int);
	void (*finish)(PGconn *);
	void (*freemem)(void *);
	int (*getisnull)(const PGresult *, int, int);
	int (*getlength)(const PGresult *, int, int);
	char *(*getvalue)(const PGresult *, int, int);
	PGnotify *(*notifies)(PGconn *);
	int (*ntuples)(const PGresult *);
	PGresult *(*prepare)(PGconn *, const char *, const char *, int,
	    const Oid *);
	void (*reset)(PGconn *);
	char *(*resultErrorField)(const PGresult *, int);
	ExecStatusType (*resultStatus)(const PGresult *);
	PQnoticeProcessor (*setNoticeProcessor)(PGconn *, PQnoticeProcessor,
	    void *);
	int (*socket)(const PGconn *);
	ConnStatusType (*status)(const PGconn *);
	PGTransactionStatusType (*transactionStatus)(const PGconn *);
};
extern struct pqdl pqdl;

/* Load libpq once (any thread; later calls return the first result).
 * 0, or -1 with the reason (naming PQDL_LIBRARY) in err. */
int pqdl_load(char *err, size_t errlen);

#ifndef PQDL_NO_MACROS
#define PQclear pqdl.clear
#define PQcmdTuples pqdl.cmdTuples
#define PQconnectdb pqdl.connectdb
#define PQconsumeInput pqdl.consumeInput
#define PQerrorMessage pqdl.errorMessage
#define PQexec pqdl.exec
#define PQexecPrepared pqdl.execPrepared
#define PQfinish pqdl.finish
#define PQfreemem pqdl.freemem
#define PQgetisnull pqdl.getisnull
#define PQgetlength pqdl.getlength
#define PQgetvalue pqdl.getvalue
#define PQnotifies pqdl.notifies
#define PQntuples pqdl.ntuples
#define PQprepare pqdl.prepare
#define PQreset pqdl.reset
#define PQresultErrorField pqdl.resultErrorField
#define PQresultStatus pqdl.resultStatus
#define PQsetNoticeProcessor pqdl.setNoticeProcessor
#define PQsocket pqdl.socket
#define PQstatus pqdl.status
#define PQtransactionStatus pqdl.transactionStatus
#endif

#endif
