// cxx_names [N]: C++ functions with qualified, overloaded, template, method and anonymous-namespace
// names, each called N times, for probe targets written as in C++ (tests/test_symbols.py).
// Prints N and a sum that depends only on N: a traced run must print what an untraced one does.
#include <cstdio>
#include <cstdlib>

#define NOIPA __attribute__((noipa))

namespace app {

struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
};

struct Square : Shape {
    double side;
    explicit Square(double s) : side(s) {}
    double area() const override;
};

NOIPA double Square::area() const { return side * side; }

NOIPA int scale(int x) { return 2 * x; }
NOIPA double scale(double x) { return 2.5 * x; }

template <class T> NOIPA T twice(T x) { return x + x; }

namespace {
NOIPA long hidden(long x) { return x ^ 7; }
} // namespace

} // namespace app

NOIPA int plain(int x) { return x + 1; } // a C++ function of the global namespace: _Z5plaini

int main(int argc, char **argv)
{
    long n = argc > 1 ? std::strtol(argv[1], nullptr, 0) : 3;
    app::Square square(1.5);
    app::Shape *shape = &square;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        sum += app::scale(static_cast<int>(i)) + app::scale(static_cast<double>(i)) + shape->area();
        sum += app::twice<int>(static_cast<int>(i)) + app::twice<double>(0.5) + plain(static_cast<int>(i));
        sum += static_cast<double>(app::hidden(i));
    }
    std::printf("calls %ld sum %.2f\n", n, sum);
    return 0;
}
