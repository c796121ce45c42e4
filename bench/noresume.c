/* LD_PRELOAD shim that stops a TLS client (wrk) from ever resuming a session, so that
 * `wrk -H 'Connection: close'` measures a FULL handshake per request.
 *
 * wrk reuses one SSL object per connection slot: it calls SSL_clear() before reconnecting, and
 * SSL_clear() keeps the previous session, so the next SSL_connect() resumes it (TLS 1.3 ticket or
 * 1.2 session id). This shim drops the session after every SSL_clear() and ignores SSL_set_session().
 * Build: gcc -shared -fPIC -O2 -o noresume.so noresume.c -ldl  (bench/run.py does this itself). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef int (*clear_fn)(void *);
typedef int (*set_session_fn)(void *, void *);

static set_session_fn real_set_session(void) {
    static set_session_fn fn;
    if (!fn) fn = (set_session_fn)dlsym(RTLD_NEXT, "SSL_set_session");
    return fn;
}

int SSL_set_session(void *ssl, void *session) {
    if (session != NULL) return 1; /* pretend it worked; no resumption */
    return real_set_session()(ssl, NULL);
}

int SSL_clear(void *ssl) {
    static clear_fn real_clear;
    if (!real_clear) real_clear = (clear_fn)dlsym(RTLD_NEXT, "SSL_clear");
    int r = real_clear(ssl);
    real_set_session()(ssl, NULL); /* forget the previous session */
    return r;
}
