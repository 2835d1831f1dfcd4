/*
 * The attesting guest's boot code: cvm's built-in firmware-style image (issue 22), a
 * 256 KiB image that ends at 4 GiB like OVMF. It starts at the reset vector 0xfffffff0
 * either in real mode (a plain VM, SEV-SNP: the VMSA's reset state) or in 32-bit
 * protected mode with paging off (TDX: the TDX module's initial TD state, TDX module
 * spec "Initial TD vCPU state"), as TDVF's ResetVector does: `mov eax, cr0; test al, 1`
 * decodes the same in both modes. It builds identity page tables (the first GiB and the
 * last 2 MiB below 4 GiB, 2 MiB pages, with the SEV C-bit when an SNP CPUID page is
 * present), enables SSE (the Rust code is built for the host target, which assumes it),
 * enters long mode and calls `cvm_attest_main(tee, c_bit_mask)` (src/lib.rs) on a stack
 * in RAM.
 *
 * RAM it uses (below 16 MiB, inside every guest cvm launches): 0x800000 page tables,
 * 0x80a000 the SNP CPUID page's place, 0x810000-0x820000 the stack.
 */
        .intel_syntax noprefix
        .section .note.GNU-stack, "", @progbits
        .set PML4, 0x800000
        .set PDPT, 0x801000
        .set PD_LOW, 0x802000
        .set PD_HIGH, 0x803000
        .set CPUID_PAGE, 0x80a000
        .set STACK_TOP, 0x820000
        .set TEE_NONE, 0
        .set TEE_SNP, 1
        .set TEE_TDX, 2

        .section .boot, "ax"
        .code32
/* Entered from start16 (plain, SNP) or from the reset vector directly (TDX, ebp = 2). */
start32_real:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        xor ebp, ebp                    /* TEE_NONE until the CPUID page says SNP */
        /* An SNP guest's CPUID page (filled and checked by the AMD-SP at launch): count u32
         * at 0, entries of 48 bytes from 16 {eax_in, ecx_in, xcr0_in u64, xss_in u64, eax,
         * ebx, ecx, edx, reserved u64}. Leaf 0x8000001f EBX[5:0] is the C-bit. A plain
         * VM's page is zero RAM (count 0). */
        mov ecx, dword ptr ds:[CPUID_PAGE]
        cmp ecx, 64
        ja no_cbit                      /* at most 64 entries fit a page */
        lea esi, [CPUID_PAGE + 16]
1:      test ecx, ecx
        jz no_cbit
        cmp dword ptr [esi], 0x8000001f
        jne 2f
        cmp dword ptr [esi + 4], 0
        jne 2f
        mov ebx, dword ptr [esi + 28]   /* ebx of leaf 0x8000001f */
        and ebx, 0x3f
        mov ebp, TEE_SNP
        jmp build_tables
2:      add esi, 48
        dec ecx
        jmp 1b
no_cbit:
        xor ebx, ebx
        jmp build_tables

start32_tdx:
        lgdt [gdtr]                     /* the TD starts with no GDT of cvm's */
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov ebp, TEE_TDX
        xor ebx, ebx
        /* fall through */

/* ebx = C-bit position (0: none), ebp = TEE. Every entry gets (1 << C-bit) in its high
 * dword when the C-bit is above 31 (it is 47 or 51 on EPYC). */
build_tables:
        xor edx, edx
        test ebx, ebx
        jz 3f
        lea ecx, [ebx - 32]
        mov edx, 1
        shl edx, cl
3:      mov edi, PML4
        xor eax, eax
        mov ecx, 0x1000                 /* four pages of dwords */
        rep stosd
        mov dword ptr ds:[PML4], PDPT + 3
        mov dword ptr ds:[PML4 + 4], edx
        mov dword ptr ds:[PDPT], PD_LOW + 3
        mov dword ptr ds:[PDPT + 4], edx
        mov dword ptr ds:[PDPT + 3 * 8], PD_HIGH + 3
        mov dword ptr ds:[PDPT + 3 * 8 + 4], edx
        /* The first GiB, 512 2 MiB pages. */
        mov edi, PD_LOW
        mov eax, 0x83
        mov ecx, 512
4:      mov dword ptr [edi], eax
        mov dword ptr [edi + 4], edx
        add eax, 0x200000
        add edi, 8
        loop 4b
        /* The last 2 MiB below 4 GiB: this image. */
        mov dword ptr ds:[PD_HIGH + 511 * 8], 0xffe00083
        mov dword ptr ds:[PD_HIGH + 511 * 8 + 4], edx
        mov eax, cr4
        or eax, 0x620                   /* PAE, OSFXSR, OSXMMEXCPT */
        mov cr4, eax
        mov eax, PML4
        mov cr3, eax
        mov ecx, 0xc0000080             /* EFER.LME */
        rdmsr
        or eax, 0x100
        wrmsr
        mov eax, cr0
        and eax, 0xfffffffb             /* EM off */
        or eax, 0x80000002              /* PG, MP */
        mov cr0, eax
        .byte 0xea                      /* jmp far 0x18:start64 */
        .long start64
        .word 0x18

        .code64
start64:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov rsp, STACK_TOP
        mov edi, ebp                    /* tee */
        xor esi, esi
        test ebx, ebx
        jz 5f
        mov ecx, ebx
        mov esi, 1
        shl rsi, cl                     /* c_bit_mask */
5:      call cvm_attest_main
6:      jmp 6b                          /* cvm_attest_main never returns */


/* The last 4 KiB: the firmware metadata, the real-mode entry and the reset vector (CS
 * base 0xffff0000). */
        .section .reset, "ax"
reset_base:                             /* 0xfffff000, image offset 0x3f000 */
        .set IMAGE_SIZE, 0x40000

/* SEV metadata (OvmfPkg ResetVector "ASEV", as ../../firmware/src/ovmf.rs reads it):
 * {gpa, size, type} sections the launcher pre-validates (SNP_SEC_MEM 1), fills with the
 * secrets (2) and the CPUID table (3). */
        .p2align 4
asev:   .ascii "ASEV"
        .long asev_end - asev
        .long 1
        .long 4
        .long 0x800000, 0x9000, 1       /* page tables, spare pages */
        .long 0x809000, 0x1000, 2       /* secrets: VMPCK0 */
        .long CPUID_PAGE, 0x1000, 3     /* the CPUID table (attest.s reads the C-bit) */
        .long 0x80b000, 0x15000, 1      /* the stack */
asev_end:

/* TDVF descriptor ("TDVF", TDVF spec "TDVF Metadata"): {DataOffset, RawSize,
 * MemoryAddress u64, MemoryDataSize u64, Type, Attributes}. The image is the BFV
 * (type 0), measured into MRTD (MR_EXTEND, attribute 1); the rest is accepted RAM the
 * TD starts with: TEMP_MEM (3) and the TD HOB (2) that the launcher writes. */
        .p2align 4
tdvf:   .ascii "TDVF"
        .long tdvf_end - tdvf
        .long 1
        .long 4
        .long 0, IMAGE_SIZE
        .quad 0x100000000 - IMAGE_SIZE, IMAGE_SIZE
        .long 0, 1
        .long 0, 0
        .quad 0x800000, 0x9000
        .long 3, 0
        .long 0, 0
        .quad 0x809000, 0x2000
        .long 2, 0
        .long 0, 0
        .quad 0x80b000, 0x15000
        .long 3, 0
tdvf_end:

        .code16
        .p2align 3
gdt:    .quad 0
        .quad 0x00cf9b000000ffff        /* 0x08: code32, flat */
        .quad 0x00cf93000000ffff        /* 0x10: data, flat */
        .quad 0x00af9b000000ffff        /* 0x18: code64 */
gdtr:   .word 31
        .long gdt

/* Where an AP would start under SEV-ES/SNP (the SEV-ES reset block below): it parks.
 * cvm starts one vCPU only; the block is there because QEMU's and sev-snp-measure's SEV-ES
 * and SNP paths require one (QEMU target/i386/sev.c sev_es_find_reset_vector). */
ap_park:
        cli
        hlt
        jmp ap_park

start16:
        cli
        .byte 0x66
        lgdt cs:[gdtr - 0xffff0000]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        .byte 0x66, 0xea                /* jmp far 0x08:start32_real */
        .long start32_real
        .word 0x08

/* The footer GUID table (OvmfPkg ResetVector/Ia16/ResetVectorVtf0.asm): entries of
 * {data, u16 size, GUID}, closed by {u16 table size, GUID 96b582de-...}, ending 32 bytes
 * before the end of the image. Each entry here holds a u32 offset counted back from the
 * end of the image. */
        .set FOOTER_SIZE, 22 + 22 + 22 + 22 + 18
        .org 0xfe0 - FOOTER_SIZE
        .long 1                         /* NO_RTMR_EXTENDS: no TDG.MR.RTMR.EXTEND here */
        .word 22
        /* cvm's CVM_GUEST 940b618b-cf51-4507-8fe1-75a6172b284b (firmware/src/ovmf.rs) */
        .byte 0x8b, 0x61, 0x0b, 0x94, 0x51, 0xcf, 0x07, 0x45
        .byte 0x8f, 0xe1, 0x75, 0xa6, 0x17, 0x2b, 0x28, 0x4b
        .long ap_park                   /* CS base 0xffff0000, IP 0xf000 + offset */
        .word 22
        /* SEV_ES_RESET_BLOCK 00f771de-1a7e-4fcb-890e-68c77e2fb44e */
        .byte 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f
        .byte 0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e
        .long IMAGE_SIZE - (0x3f000 + (asev - reset_base))
        .word 22
        /* OVMF_SEV_METADATA dc886566-984a-4798-a75e-5585a7bf67cc */
        .byte 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47
        .byte 0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc
        .long IMAGE_SIZE - (0x3f000 + (tdvf - reset_base))
        .word 22
        /* TDX_METADATA_OFFSET e47a6535-984a-4798-865e-4685a7bf8ec2 */
        .byte 0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47
        .byte 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2
        .word FOOTER_SIZE
        /* the footer table, 96b582de-1fb2-45f7-baea-a366c55a082d */
        .byte 0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45
        .byte 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d

        .org 0xff0                      /* 0xfffffff0 */
        .globl reset_vector
reset_vector:
        mov eax, cr0                    /* 0f 20 c0 in both modes */
        test al, 1
        jz 7f
        .code32
        jmp start32_tdx                 /* TDX: protected mode, paging off */
        .code16
7:      jmp start16                     /* real mode */
        .org 0x1000
