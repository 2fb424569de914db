// api_exc [N [MODE]]: C++ exceptions thrown through functions a test return-probes (tests/test_retprobes.py).
//
//   throw (default)  for i < N: catcher(i) calls middle(i), which holds a Guard (a destructor: a cleanup
//                    landing pad, so the unwinder stops in middle and resumes with _Unwind_Resume) and
//                    calls thrower(i); thrower throws when i % 3 == 0. catcher catches and returns -1.
//   rethrow          the same, but catcher's handler calls relay(), which rethrows (`throw;`): the
//                    exception then leaves catcher too and main catches it
//
// Prints the sum of the results, the number of exceptions caught and of Guard destructors run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

// extern "C": the tests probe them by their plain names
#define NOIPA extern "C" __attribute__((noipa))

static volatile long sink;
static int dtors, caught_in_main;
static bool rethrow_mode;

struct Guard {
    ~Guard() { dtors++; }
};

NOIPA long thrower(long i)
{
    if (i % 3 == 0)
        throw std::runtime_error("multiple of three");
    sink += i;
    return i * 10;
}

NOIPA long middle(long i)
{
    Guard g;
    long r = thrower(i);
    sink += r;
    return r + 1;
}

NOIPA long relay(long i)
{
    sink += i;
    throw; // rethrows the exception being handled by catcher
}

NOIPA long catcher(long i)
{
    try {
        long r = middle(i);
        sink += r;
        return r;
    } catch (const std::runtime_error &) {
        if (rethrow_mode)
            return relay(i);
        return -1;
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? std::atol(argv[1]) : 30;
    rethrow_mode = argc > 2 && std::strcmp(argv[2], "rethrow") == 0;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        try {
            sum += catcher(i);
        } catch (const std::runtime_error &e) {
            caught_in_main++;
            sum -= 2;
        }
    }
    std::printf("sum %ld dtors %d caught_in_main %d\n", sum, dtors, caught_in_main);
    return 0;
}
