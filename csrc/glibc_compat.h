/* Bind the pthread calls to their oldest x86-64 glibc symbol versions.
 *
 * glibc 2.34 merged libpthread into libc and re-exported pthread_create and
 * pthread_once under a new version, GLIBC_2.34, with the same code behind both
 * names. Linking against a new glibc picks the new version, which alone would
 * lift the wheel from manylinux_2_17 to manylinux_2_34. Pinning the old version
 * costs nothing: glibc >= 2.34 still exports it (from libc), and older glibc
 * exports it from libpthread, which every CPython on such a system has loaded.
 * Include this after <pthread.h> in each file that calls these functions; it is
 * a no-op off x86-64 glibc (aarch64's oldest version is the baseline already,
 * and musl, macOS and Windows have no symbol versions). */
#ifndef PD_GLIBC_COMPAT_H
#define PD_GLIBC_COMPAT_H

#include <pthread.h>

#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
#endif

#endif
