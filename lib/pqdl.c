/*
 * pqdl: libpq loaded on first use (pqdl.h says why).
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PQDL_NO_MACROS
#include "pqdl.h"

#define PQDL_ERR_MAX 256  /* bytes of the loader's reason */

struct pqdl pqdl;

static pthread_once_t pqdl_once = PTHREAD_ONCE_INIT;
static int pqdl_rc = -1;
static char pqdl_err[PQDL_ERR_MAX];

/* One symbol into *slot (a function pointer's storage, POSIX's way). */
static int
pqdl_sym(void *h, const char *name, void *slot)
{
	void *p;

	dlerror();
	if ((p = dlsym(h, name)) == NULL) {
		snprintf(pqdl_err, sizeof(pqdl_err), "%s: no %s",
		    PQDL_LIBRARY, name);
		return -1;
	}
	memcpy(slot, &p, sizeof(p));
	return 0;
}

static void
pqdl_open(void)
{
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define S(f, n) { n, offsetof(struct pqdl, f) }
		S(clear, "PQclear"), S(cmdTuples, "PQcmdTuples"),
		S(connectdb, "PQconnectdb"), S(consumeInput, "PQconsumeInput"),
		S(errorMessage, "PQerrorMessage"), S(exec, "PQexec"),
		S(execPrepared, "PQexecPrepared"), S(finish, "PQfinish"),
		S(freemem, "PQfreemem"), S(getisnull, "PQgetisnull"),
		S(getlength, "PQgetlength"), S(getvalue, "PQgetvalue"),
		S(notifies, "PQnotifies"), S(ntuples, "PQntuples"),
		S(prepare, "PQprepare"), S(reset, "PQreset"),
		S(resultErrorField, "PQresultErrorField"),
		S(resultStatus, "PQresultStatus"),
		S(setNoticeProcessor, "PQsetNoticeProcessor"),
		S(socket, "PQsocket"), S(status, "PQstatus"),
		S(transactionStatus, "PQtransactionStatus"),
#undef S
	};
	const char *why;
	size_t i;
	void *h;

	if ((h = dlopen(PQDL_LIBRARY, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		snprintf(pqdl_err, sizeof(pqdl_err), "%s (Debian: apt-get "
		    "install libpq5)", why != NULL ? why : PQDL_LIBRARY);
		return;
	}
	for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (pqdl_sym(h, syms[i].name, (char *)&pqdl + syms[i].off) != 0)
			return;   /* h stays open: nothing of it is used */
	pqdl_rc = 0;
}

int
pqdl_load(char *err, size_t errlen)
{
	pthread_once(&pqdl_once, pqdl_open);
	if (pqdl_rc != 0 && err != NULL)
		snprintf(err, errlen, "%s", pqdl_err);
	return pqdl_rc;
}
