/*
 * One small function per instruction class the out-of-line relocator handles
 * (utrace/relocate.py). Each fn_<class> is C-callable (long fn(long)); the global
 * label t_<class> sits exactly on the instruction a test probes. insn_classes_main.c
 * calls every function many times and prints a checksum per class, so a probe that
 * changes any instruction's effect changes the output.
 *
 * Branches whose encoding matters (rel8 vs rel32) are spelled as bytes so the
 * assembler cannot relax them.
 */
        .intel_syntax noprefix

#define FUNC(name) .text; .p2align 4; .globl name; .type name, @function; name:
#define END(name) .size name, . - name
#define PROBE(name) .globl name; name:

        .data
        .p2align 6
zvec:   .quad 1, 2, 3, 4, 5, 6, 7, 8
shufmask:
        .byte 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0
table_q:
        .quad 0x1122334455667788, 0x0102030405060708, 0x7f
counter:
        .quad 0
counter2:
        .quad 0
counter32:
        .long 0
        .long 0
popvar: .quad 0
dconst: .double 1.5
fnptrs: .quad helper_ra, helper_ra
jptr:   .quad jmp_rip_target
jtab:   .quad jmp_mem_even, jmp_mem_odd
srcbuf: .quad 0, 0
dstbuf: .quad 0, 0

/* Returns its own return address: callers check it is the original one. */
FUNC(helper_ra)
        mov rax, qword ptr [rsp]
        ret
END(helper_ra)

/* plain: copy + jump back */
FUNC(fn_plain)
        lea rax, [rdi + 1]
PROBE(t_plain)
        add rax, rdi
        ret
END(fn_plain)

/* RIP-relative load */
FUNC(fn_riprel_load)
PROBE(t_riprel_load)
        mov rax, qword ptr [rip + table_q + 8]
        add rax, rdi
        ret
END(fn_riprel_load)

/* RIP-relative read-modify-write */
FUNC(fn_riprel_store)
PROBE(t_riprel_store)
        add qword ptr [rip + counter], rdi
        mov rax, qword ptr [rip + counter]
        ret
END(fn_riprel_store)

/* RIP-relative with an immediate after the displacement */
FUNC(fn_riprel_imm)
PROBE(t_riprel_imm)
        add dword ptr [rip + counter32], 0x01020304
        mov eax, dword ptr [rip + counter32]
        xor rax, rdi
        ret
END(fn_riprel_imm)

/* RIP-relative with a lock prefix */
FUNC(fn_lock_rip)
PROBE(t_lock_rip)
        lock add qword ptr [rip + counter2], rdi
        mov rax, qword ptr [rip + counter2]
        ret
END(fn_lock_rip)

/* lea of a RIP-relative address */
FUNC(fn_lea_rip)
PROBE(t_lea_rip)
        lea rax, [rip + table_q]
        mov rax, qword ptr [rax + 16]
        add rax, rdi
        ret
END(fn_lea_rip)

/* SSE with a RIP-relative operand */
FUNC(fn_sse_rip)
        cvtsi2sd xmm0, rdi
PROBE(t_sse_rip)
        addsd xmm0, qword ptr [rip + dconst]
        addsd xmm0, xmm0
        cvttsd2si rax, xmm0
        ret
END(fn_sse_rip)

/* AVX, VEX2 encoding (c5), RIP-relative */
FUNC(fn_avx_rip)
        vcvtsi2sd xmm0, xmm0, rdi
PROBE(t_avx_rip)
        vmulsd xmm0, xmm0, qword ptr [rip + dconst]
        vcvttsd2si rax, xmm0
        ret
END(fn_avx_rip)

/* AVX, VEX3 encoding (c4, map 0f38), RIP-relative */
FUNC(fn_vex3_rip)
        vmovq xmm0, rdi
PROBE(t_vex3_rip)
        vpshufb xmm0, xmm0, xmmword ptr [rip + shufmask]
        vpextrq rax, xmm0, 1
        xor rax, rdi
        ret
END(fn_vex3_rip)

/* AVX-512, EVEX encoding (62), RIP-relative */
FUNC(fn_evex_rip)
        vpbroadcastq zmm16, rdi
PROBE(t_evex_rip)
        vpaddq zmm16, zmm16, zmmword ptr [rip + zvec]
        vextracti64x4 ymm17, zmm16, 1
        vmovq rax, xmm17
        vzeroupper
        ret
END(fn_evex_rip)

/* jmp rel8 */
FUNC(fn_jmp8)
        mov rax, rdi
PROBE(t_jmp8)
        .byte 0xeb, .Ljmp8_target - . - 1
        add rax, 100
.Ljmp8_target:
        add rax, 1
        ret
END(fn_jmp8)

/* jmp rel32 */
FUNC(fn_jmp32)
        mov rax, rdi
PROBE(t_jmp32)
        .byte 0xe9
        .long .Ljmp32_target - . - 4
        add rax, 100
.Ljmp32_target:
        add rax, 2
        ret
END(fn_jmp32)

/* jcc rel8, both directions */
FUNC(fn_jcc8)
        mov rax, rdi
        test edi, 1
PROBE(t_jcc8)
        .byte 0x74, .Ljcc8_even - . - 1          /* je */
        add rax, 1000
.Ljcc8_even:
        add rax, 3
        ret
END(fn_jcc8)

/* jcc rel32, both directions */
FUNC(fn_jcc32)
        mov rax, rdi
        cmp edi, 500
PROBE(t_jcc32)
        .byte 0x0f, 0x8c                        /* jl */
        .long .Ljcc32_less - . - 4
        add rax, 2000
.Ljcc32_less:
        add rax, 5
        ret
END(fn_jcc32)

/* loop: (x & 15) + 1 iterations */
FUNC(fn_loop)
        mov ecx, edi
        and ecx, 15
        inc ecx
        xor eax, eax
.Lloop_top:
        add rax, rcx
PROBE(t_loop)
        loop .Lloop_top
        ret
END(fn_loop)

/* loopne: stops when eax reaches (x & 7) + 1 */
FUNC(fn_loopne)
        mov edx, edi
        and edx, 7
        inc edx
        mov ecx, 20
        xor eax, eax
.Lloopne_top:
        inc eax
        cmp eax, edx
PROBE(t_loopne)
        loopne .Lloopne_top
        lea rax, [rax + rcx * 4]
        ret
END(fn_loopne)

/* loope: stops at the first eax with bit (x & 3) set, i.e. after 1 << (x & 3) rounds */
FUNC(fn_loope)
        mov ecx, edi
        and ecx, 3
        mov edx, 1
        shl edx, cl
        mov ecx, 20
        xor eax, eax
.Lloope_top:
        inc eax
        test eax, edx
PROBE(t_loope)
        loope .Lloope_top
        lea rax, [rax + rcx * 8]
        ret
END(fn_loope)

/* jrcxz */
FUNC(fn_jrcxz)
        mov rcx, rdi
        xor eax, eax
PROBE(t_jrcxz)
        jrcxz .Ljrcxz_zero
        mov eax, 7
.Ljrcxz_zero:
        add rax, rdi
        ret
END(fn_jrcxz)

/* jecxz: only ecx counts, the upper half of rcx does not */
FUNC(fn_jecxz)
        mov rcx, rdi
        xor eax, eax
PROBE(t_jecxz)
        jecxz .Ljecxz_zero
        mov eax, 9
.Ljecxz_zero:
        add rax, rdi
        ret
END(fn_jecxz)

/* call rel32: returns 1 + 2x if the callee saw the original return address */
FUNC(fn_call_rel)
PROBE(t_call_rel)
        call helper_ra
.Lcall_rel_ra:
        lea rdx, [rip + .Lcall_rel_ra]
        cmp rax, rdx
        sete al
        movzx eax, al
        lea rax, [rax + rdi * 2]
        ret
END(fn_call_rel)

/* call register */
FUNC(fn_call_reg)
        lea rax, [rip + helper_ra]
PROBE(t_call_reg)
        call rax
.Lcall_reg_ra:
        lea rdx, [rip + .Lcall_reg_ra]
        cmp rax, rdx
        sete al
        movzx eax, al
        lea rax, [rax + rdi * 2]
        ret
END(fn_call_reg)

/* call memory (base register) */
FUNC(fn_call_mem)
        lea rdx, [rip + fnptrs]
PROBE(t_call_mem)
        call qword ptr [rdx + 8]
.Lcall_mem_ra:
        lea rdx, [rip + .Lcall_mem_ra]
        cmp rax, rdx
        sete al
        movzx eax, al
        lea rax, [rax + rdi * 2]
        ret
END(fn_call_mem)

/* call memory, RIP-relative (like -fno-plt calls through the GOT) */
FUNC(fn_call_rip)
PROBE(t_call_rip)
        call qword ptr [rip + fnptrs]
.Lcall_rip_ra:
        lea rdx, [rip + .Lcall_rip_ra]
        cmp rax, rdx
        sete al
        movzx eax, al
        lea rax, [rax + rdi * 2]
        ret
END(fn_call_rip)

/* call memory, rsp-relative: the operand is read before the return address is pushed */
FUNC(fn_call_rsp)
        lea rax, [rip + helper_ra]
        push rax
        push rdi
PROBE(t_call_rsp)
        call qword ptr [rsp + 8]
.Lcall_rsp_ra:
        add rsp, 16
        lea rdx, [rip + .Lcall_rsp_ra]
        cmp rax, rdx
        sete al
        movzx eax, al
        lea rax, [rax + rdi * 2]
        ret
END(fn_call_rsp)

/* ret */
FUNC(fn_ret)
        lea rax, [rdi + 3]
PROBE(t_ret)
        ret
END(fn_ret)

/* ret imm16: the callee drops the argument its caller pushed */
FUNC(callee_ret_imm)
        mov rax, qword ptr [rsp + 8]
        add rax, 5
PROBE(t_ret_imm)
        ret 8
END(callee_ret_imm)

FUNC(fn_ret_imm)
        push rdi
        call callee_ret_imm
        ret
END(fn_ret_imm)

/* jmp register (a PIC switch table) */
FUNC(fn_jmp_reg)
        lea rdx, [rip + .Ljmp_reg_table]
        mov eax, edi
        and eax, 3
        movsxd rax, dword ptr [rdx + rax * 4]
        add rax, rdx
PROBE(t_jmp_reg)
        jmp rax
.Ljmp_reg_0:
        lea rax, [rdi + 10]
        ret
.Ljmp_reg_1:
        lea rax, [rdi + 20]
        ret
.Ljmp_reg_2:
        lea rax, [rdi + 30]
        ret
.Ljmp_reg_3:
        lea rax, [rdi + 40]
        ret
        .section .rodata
        .p2align 2
.Ljmp_reg_table:
        .long .Ljmp_reg_0 - .Ljmp_reg_table, .Ljmp_reg_1 - .Ljmp_reg_table
        .long .Ljmp_reg_2 - .Ljmp_reg_table, .Ljmp_reg_3 - .Ljmp_reg_table
        .text
END(fn_jmp_reg)

/* jmp memory (base + index) */
FUNC(fn_jmp_mem)
        lea rdx, [rip + jtab]
        mov eax, edi
        and eax, 1
PROBE(t_jmp_mem)
        jmp qword ptr [rdx + rax * 8]
jmp_mem_even:
        lea rax, [rdi + 11]
        ret
jmp_mem_odd:
        lea rax, [rdi + 13]
        ret
END(fn_jmp_mem)

/* jmp memory, RIP-relative (like a PLT entry) */
FUNC(fn_jmp_rip)
        mov rax, rdi
PROBE(t_jmp_rip)
        jmp qword ptr [rip + jptr]
        ud2
jmp_rip_target:
        add rax, 17
        ret
END(fn_jmp_rip)

/* push register */
FUNC(fn_push)
PROBE(t_push)
        push rdi
        pop rax
        add rax, 1
        ret
END(fn_push)

/* pop register */
FUNC(fn_pop)
        push rdi
PROBE(t_pop)
        pop rax
        add rax, 2
        ret
END(fn_pop)

/* push memory, RIP-relative */
FUNC(fn_push_rip)
PROBE(t_push_rip)
        push qword ptr [rip + table_q + 16]
        pop rax
        add rax, rdi
        ret
END(fn_push_rip)

/* pop memory, RIP-relative */
FUNC(fn_pop_rip)
        push rdi
PROBE(t_pop_rip)
        pop qword ptr [rip + popvar]
        mov rax, qword ptr [rip + popvar]
        add rax, 4
        ret
END(fn_pop_rip)

/* endbr64 at a function's entry */
FUNC(fn_endbr)
PROBE(t_endbr)
        endbr64
        lea rax, [rdi + 6]
        ret
END(fn_endbr)

/* one-byte nop */
FUNC(fn_nop)
        mov rax, rdi
PROBE(t_nop)
        nop
        add rax, 7
        ret
END(fn_nop)

/* multi-byte nop */
FUNC(fn_nopl)
        mov rax, rdi
PROBE(t_nopl)
        nop dword ptr [rax + rax * 1 + 0]
        add rax, 8
        ret
END(fn_nopl)

/* rep movsb: a single-step runs one iteration only */
FUNC(fn_rep_movsb)
        mov qword ptr [rip + srcbuf], rdi
        mov qword ptr [rip + srcbuf + 8], rdi
        lea rsi, [rip + srcbuf]
        lea rdi, [rip + dstbuf]
        mov ecx, 16
PROBE(t_rep_movsb)
        rep movsb
        mov rax, qword ptr [rip + dstbuf + 8]
        add rax, rcx
        ret
END(fn_rep_movsb)

/* syscall (getpid): returns 1 if rcx holds the address after the syscall, as the CPU sets it */
FUNC(fn_syscall)
        mov eax, 39
PROBE(t_syscall)
        syscall
.Lsyscall_after:
        lea rdx, [rip + .Lsyscall_after]
        cmp rcx, rdx
        sete cl
        test rax, rax
        setg al
        and al, cl
        movzx eax, al
        ret
END(fn_syscall)

        .section .note.GNU-stack, "", @progbits
