// Clang thread-safety annotations (-Wthread-safety). They document which
// mutex guards which member and are checked in a clang build; with gcc they
// expand to nothing. Shape of google/leveldb port/thread_annotations.h.
//
// abseil (pulled in by gRPC) defines the same legacy names with the same
// meaning; whichever header comes first wins, so each is defined only if absent.
#pragma once

#if defined(__clang__)
#define DFS_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define DFS_THREAD_ANNOTATION_(x)
#endif

#ifndef GUARDED_BY
#define GUARDED_BY(x) DFS_THREAD_ANNOTATION_(guarded_by(x))
#endif
#ifndef PT_GUARDED_BY
#define PT_GUARDED_BY(x) DFS_THREAD_ANNOTATION_(pt_guarded_by(x))
#endif
#ifndef REQUIRES
#define REQUIRES(...) DFS_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#endif
#ifndef EXCLUDES
#define EXCLUDES(...) DFS_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#endif
#ifndef ACQUIRED_AFTER
#define ACQUIRED_AFTER(...) DFS_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#endif
