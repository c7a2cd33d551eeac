// The one main() of common_bench; each *_bench.cc registers its benchmarks.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
