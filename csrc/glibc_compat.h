/* Bind the pthread calls to their oldest x86-64 glibc symbol versions.
 *
 * glibc 2.34 merged libpthread into libc and re-exported most pthread functions
 * (pthread_create, pthread_once, the thread-specific keys, ...) under a new
 * version, GLIBC_2.34, with the same code behind both names. Linking against a
 * new glibc picks the new version, which alone would lift the wheel from
 * manylinux_2_17 to manylinux_2_34. Pinning the old version costs nothing:
 * glibc >= 2.34 still exports it (from libc), and older glibc exports it from
 * libpthread, which every CPython on such a system has loaded.
 *
 * Include this in each file that calls pthread functions; `make wheel` fails
 * (auditwheel: "too-recent versioned symbols") when one binds a newer version.
 * It is a no-op off x86-64 glibc: aarch64's oldest version is the baseline
 * already, and musl, macOS and Windows have no symbol versions. */
#ifndef PD_GLIBC_COMPAT_H
#define PD_GLIBC_COMPAT_H

#include <pthread.h>

#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
/* A directive for a function the file does not call emits nothing. */
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_key_create,pthread_key_create@GLIBC_2.2.5");
__asm__(".symver pthread_key_delete,pthread_key_delete@GLIBC_2.2.5");
__asm__(".symver pthread_getspecific,pthread_getspecific@GLIBC_2.2.5");
__asm__(".symver pthread_setspecific,pthread_setspecific@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver pthread_attr_setstacksize,pthread_attr_setstacksize@GLIBC_2.2.5");
#endif

#endif
