/*
 * Drives samples/insn_classes.S: calls every fn_<class> N times with varied inputs (both
 * directions of each conditional branch) and prints, per class, how many times the probed
 * instruction t_<class> executes and a checksum of the results:
 *
 *     t_<class> hits=<count> sum=<checksum>
 *
 * A class the CPU cannot run prints hits=0 and is not called. Exits 0.
 */
#include <stdio.h>

#define N 1000

typedef long (*fn_t)(long);

long fn_plain(long), fn_riprel_load(long), fn_riprel_store(long), fn_riprel_imm(long);
long fn_lock_rip(long), fn_lea_rip(long), fn_sse_rip(long), fn_avx_rip(long);
long fn_vex3_rip(long), fn_evex_rip(long), fn_jmp8(long), fn_jmp32(long);
long fn_jcc8(long), fn_jcc32(long), fn_loop(long), fn_loopne(long), fn_loope(long);
long fn_jrcxz(long), fn_jecxz(long), fn_call_rel(long), fn_call_reg(long);
long fn_call_mem(long), fn_call_rip(long), fn_call_rsp(long), fn_ret(long);
long fn_ret_imm(long), fn_jmp_reg(long), fn_jmp_mem(long), fn_jmp_rip(long);
long fn_push(long), fn_pop(long), fn_push_rip(long), fn_pop_rip(long), fn_endbr(long);
long fn_nop(long), fn_nopl(long), fn_rep_movsb(long), fn_syscall(long);

/* inputs */
static long arg_id(long i) { return i; }
static long arg_jrcxz(long i) { return i % 3 == 0 ? 0 : i; }
static long arg_jecxz(long i) { return i % 4 == 0 ? (i + 1) << 32 : i; } /* ecx == 0, rcx != 0 */

/* how many times the probed instruction runs per call */
static long once(long a) { (void)a; return 1; }
static long hits_loop(long a) { return (a & 15) + 1; }
static long hits_loopne(long a) { return (a & 7) + 1; }
static long hits_loope(long a) { return 1L << (a & 3); }

static void run(const char *name, int supported, fn_t fn, long (*arg)(long), long (*hits)(long))
{
    unsigned long sum = 0;
    long count = 0;
    if (supported) {
        for (long i = 0; i < N; i++) {
            long a = arg(i);
            sum = sum * 31 + (unsigned long)fn(a);
            count += hits(a);
        }
    }
    printf("%s hits=%ld sum=%#lx\n", name, count, sum);
}

int main(void)
{
    __builtin_cpu_init();
    int avx = __builtin_cpu_supports("avx");
    int avx512 = __builtin_cpu_supports("avx512f");

    run("t_plain", 1, fn_plain, arg_id, once);
    run("t_riprel_load", 1, fn_riprel_load, arg_id, once);
    run("t_riprel_store", 1, fn_riprel_store, arg_id, once);
    run("t_riprel_imm", 1, fn_riprel_imm, arg_id, once);
    run("t_lock_rip", 1, fn_lock_rip, arg_id, once);
    run("t_lea_rip", 1, fn_lea_rip, arg_id, once);
    run("t_sse_rip", 1, fn_sse_rip, arg_id, once);
    run("t_avx_rip", avx, fn_avx_rip, arg_id, once);
    run("t_vex3_rip", avx, fn_vex3_rip, arg_id, once);
    run("t_evex_rip", avx512, fn_evex_rip, arg_id, once);
    run("t_jmp8", 1, fn_jmp8, arg_id, once);
    run("t_jmp32", 1, fn_jmp32, arg_id, once);
    run("t_jcc8", 1, fn_jcc8, arg_id, once);
    run("t_jcc32", 1, fn_jcc32, arg_id, once);
    run("t_loop", 1, fn_loop, arg_id, hits_loop);
    run("t_loopne", 1, fn_loopne, arg_id, hits_loopne);
    run("t_loope", 1, fn_loope, arg_id, hits_loope);
    run("t_jrcxz", 1, fn_jrcxz, arg_jrcxz, once);
    run("t_jecxz", 1, fn_jecxz, arg_jecxz, once);
    run("t_call_rel", 1, fn_call_rel, arg_id, once);
    run("t_call_reg", 1, fn_call_reg, arg_id, once);
    run("t_call_mem", 1, fn_call_mem, arg_id, once);
    run("t_call_rip", 1, fn_call_rip, arg_id, once);
    run("t_call_rsp", 1, fn_call_rsp, arg_id, once);
    run("t_ret", 1, fn_ret, arg_id, once);
    run("t_ret_imm", 1, fn_ret_imm, arg_id, once);
    run("t_jmp_reg", 1, fn_jmp_reg, arg_id, once);
    run("t_jmp_mem", 1, fn_jmp_mem, arg_id, once);
    run("t_jmp_rip", 1, fn_jmp_rip, arg_id, once);
    run("t_push", 1, fn_push, arg_id, once);
    run("t_pop", 1, fn_pop, arg_id, once);
    run("t_push_rip", 1, fn_push_rip, arg_id, once);
    run("t_pop_rip", 1, fn_pop_rip, arg_id, once);
    run("t_endbr", 1, fn_endbr, arg_id, once);
    run("t_nop", 1, fn_nop, arg_id, once);
    run("t_nopl", 1, fn_nopl, arg_id, once);
    run("t_rep_movsb", 1, fn_rep_movsb, arg_id, once);
    run("t_syscall", 1, fn_syscall, arg_id, once);
    return 0;
}
