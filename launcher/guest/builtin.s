/*
 * cvm's built-in guest: a bzImage for the Linux 64-bit boot protocol, small enough to run
 * under KVM's instruction emulator (a few thousand instructions at CPL0).
 *
 * It checks and prints what the boot protocol handed it: the zero page's "HdrS", the e820
 * map, the command line, the initrd (address, size, FNV-1a-32 of its bytes); it counts
 * the vCPUs in the MP table, starts the other vCPUs with INIT-SIPI-SIPI (each announces
 * its local APIC ID), and stops the VM through cvm's debug-exit port (0x501) with status 0,
 * or 2 when the boot parameters are wrong, 3 when a vCPU does not come up, 4 when the
 * interrupt test gets no interrupt.
 *
 * Command-line switches, for the VMM's tests:
 *   cvm.test=poke    write and read unknown I/O ports and unmapped MMIO first
 *   cvm.test=hang    never stop (spin at CPL0)
 *   cvm.test=triple  triple-fault (a #GP with no IDT)
 *   cvm.test=irq     take COM1's interrupt through the I/O APIC (pin 4) and local APIC
 *   cvm.test=fwcfg   read QEMU's fw_cfg through its DMA interface: the signature, the
 *                    feature word, then one line "fw_cfg NAME SIZE SHA256" for every file
 *                    of the directory and for the kernel, setup, initrd and cmdline items;
 *                    status 0, or 5 when fw_cfg is missing or a transfer fails
 *   cvm.test=evidence[:TYPE[@N]]
 *                    print the initrd's bytes as the evidence line of `cvm launch --attest`
 *                    ("CVM-EVIDENCE 1 TYPE <base64>", TYPE snp by default; with @N the
 *                    first N bytes, then the rest as the auxiliary data): the exchange
 *                    with evidence from elsewhere; status 0, or 2 without an initrd
 *   cvm.exit=N       stop with status N (0-255) instead of 0
 *
 * Layout: 512-byte boot sector + 1 setup sector (the setup header at 0x1f1), then the
 * protected-mode kernel, loaded at 1 MiB; the 64-bit entry is at +0x200.
 *
 * It also has a real-mode entry (the setup's jump at 0x200, as a BIOS boot loader such as
 * SeaBIOS's linuxboot_dma.bin enters it under QEMU -kernel): it switches to long mode
 * with an identity map of the first GiB built at 0x70000, reads the command line from the
 * setup header the loader patched, and then runs only the cvm.test=fwcfg probe (or stops
 * with status 0). That is how the probe runs under QEMU for comparison.
 */
        .intel_syntax noprefix

        .set SERIAL, 0x3f8
        .set DEBUG_EXIT, 0x501
        .set LAPIC, 0xfee00000
        .set IOAPIC, 0xfec00000
        .set IRQ_VECTOR, 0x30
        .set TRAMPOLINE, 0x1000         /* SIPI vector 1: the range left to the guest */
        .set LOAD, 0x100000
        .set FW_CFG_SELECTOR, 0x510
        .set FW_CFG_DMA_HI, 0x514
        .set FW_CFG_DMA_LO, 0x518
        .set FW_CFG_CHUNK, 16384        /* bytes per DMA read while hashing */
        .set FW_CFG_MAX_FILES, 64
        .set RM_PAGES, 0x70000          /* the real-mode entry's page tables (3 pages) */

/* ---------------------------------------------------------------- setup header */
        .section .setup, "a"
        .org 0x1f1
        .byte 1                         /* setup_sects */
        .word 0                         /* root_flags */
        .long 0                         /* syssize */
        .word 0                         /* ram_size */
        .word 0xffff                    /* vid_mode */
        .word 0                         /* root_dev */
        .word 0xaa55                    /* boot_flag */
        .byte 0xeb, 0x6a                /* jump: the header ends at 0x26c */
        .ascii "HdrS"                   /* header */
        .word 0x020f                    /* version 2.15 */
        .long 0                         /* realmode_swtch */
        .word 0                         /* start_sys_seg */
        .word 0                         /* kernel_version */
        .byte 0                         /* type_of_loader */
        .byte 1                         /* loadflags: LOADED_HIGH */
        .word 0                         /* setup_move_size */
        .long LOAD                      /* code32_start */
        .long 0                         /* ramdisk_image */
        .long 0                         /* ramdisk_size */
        .long 0                         /* bootsect_kludge */
        .word 0                         /* heap_end_ptr */
        .byte 0, 0                      /* ext_loader_ver, ext_loader_type */
        .long 0                         /* cmd_line_ptr */
        .long 0x7fffffff                /* initrd_addr_max */
        .long 0x200000                  /* kernel_alignment */
        .byte 0, 0                      /* relocatable_kernel, min_alignment */
        .word 1                         /* xloadflags: XLF_KERNEL_64 */
        .long 4095                      /* cmdline_size */
        .long 0                         /* hardware_subarch */
        .quad 0                         /* hardware_subarch_data */
        .long 0, 0                      /* payload_offset, payload_length */
        .quad 0                         /* setup_data */
        .quad LOAD                      /* pref_address */
        .long __init_size               /* init_size */
        .long 0                         /* handover_offset */
        .long 0                         /* kernel_info_offset */

/* The real-mode entry: CS:0 is the setup's offset 0x200, wherever the loader put it. */
        .org 0x26c
        .code16
real_entry:
        cli
        mov ax, cs
        mov ds, ax
        movzx ebx, ax
        shl ebx, 4                      /* the linear address of offset 0x200 */
        lea eax, [ebx + rm_gdt - 0x200]
        mov dword ptr [rm_gdtr + 2 - 0x200], eax
        lea eax, [ebx + rm_code32 - 0x200]
        mov dword ptr [rm_far - 0x200], eax
        lea esi, [ebx - 0x200]          /* the setup header's copy, for the 64-bit side */
        .byte 0x66
        lgdt [rm_gdtr - 0x200]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        .byte 0x66, 0xff, 0x2e          /* jmp far dword [rm_far]: 0x08:rm_code32 */
        .word rm_far - 0x200
        .code32
rm_code32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov esp, 0x7c00
        /* PML4 -> PDPT -> one page directory of 2 MiB pages: the first GiB, identity. */
        mov edi, RM_PAGES
        xor eax, eax
        mov ecx, 3 * 1024
        rep stosd
        mov dword ptr [RM_PAGES], RM_PAGES + 0x1003
        mov dword ptr [RM_PAGES + 0x1000], RM_PAGES + 0x2003
        mov edi, RM_PAGES + 0x2000
        mov eax, 0x83                   /* present, writable, 2 MiB */
        mov ecx, 512
1:      mov [edi], eax
        add eax, 0x200000
        add edi, 8
        loop 1b
        mov eax, cr4
        or eax, 0x20                    /* PAE */
        mov cr4, eax
        mov eax, RM_PAGES
        mov cr3, eax
        mov ecx, 0xc0000080             /* EFER.LME */
        rdmsr
        or eax, 0x100
        wrmsr
        mov eax, cr0
        or eax, 0x80000000              /* paging: long mode */
        mov cr0, eax
        push 0x18
        push offset startup_legacy
        retf
        .p2align 3
rm_gdt: .quad 0
        .quad 0x00cf9b000000ffff        /* 0x08: code32, flat */
        .quad 0x00cf93000000ffff        /* 0x10: data, flat */
        .quad 0x00af9b000000ffff        /* 0x18: code64 */
rm_gdtr:
        .word 31
        .long 0
rm_far: .long 0
        .word 0x08
        .org 0x400

/* ---------------------------------------------------------------- kernel */
        .text
        .code64
startup_32:                             /* no 32-bit entry */
        hlt
        jmp startup_32

        .org 0x200
startup_64:
        cli
        lea rsp, [rip + stack_top]
        mov [rip + boot_params], rsi
        lea rdi, [rip + msg_banner]
        call puts

        mov rsi, [rip + boot_params]
        cmp dword ptr [rsi + 0x202], 0x53726448         /* "HdrS" */
        jne bad_params
        lea rdi, [rip + msg_proto]
        call puts
        movzx eax, byte ptr [rsi + 0x207]
        call put_dec
        mov al, '.'
        call putc
        movzx eax, byte ptr [rsi + 0x206]
        call put_dec
        lea rdi, [rip + msg_loader]
        call puts
        movzx eax, byte ptr [rsi + 0x210]
        mov ecx, 2
        call put_hex
        call newline

        /* The command line: remember it for the switches. */
        mov eax, dword ptr [rsi + 0x228]
        mov edx, dword ptr [rsi + 0xc8]
        shl rdx, 32
        or rax, rdx
        mov [rip + cmdline], rax
        call print_cmdline

        lea rdi, [rip + sw_exit]
        call find_switch
        test rax, rax
        jz 1f
        /* One to three digits, 0-255, then a space or the end: anything else is a
           bad switch (status 2), never a status taken modulo 256. */
        mov rsi, rax
        mov rdi, rax
        call parse_dec
        mov rcx, rdi
        sub rcx, rsi
        jz bad_exit
        cmp rcx, 3
        ja bad_exit
        cmp eax, 255
        ja bad_exit
        movzx ecx, byte ptr [rdi]
        test ecx, ecx
        jz 2f
        cmp ecx, ' '
        jne bad_exit
2:      mov [rip + exit_status], al
1:
        lea rdi, [rip + sw_fwcfg]
        call find_switch
        test rax, rax
        jz 1f
        call fwcfg_probe
        jmp stop
1:
        lea rdi, [rip + sw_evidence]
        call find_switch
        test rax, rax
        jz 1f
        mov rdi, rax
        call evidence
        jmp stop
1:
        lea rdi, [rip + sw_triple]
        call find_switch
        test rax, rax
        jnz triple_fault
        lea rdi, [rip + sw_hang]
        call find_switch
        test rax, rax
        jnz hang
        lea rdi, [rip + sw_poke]
        call find_switch
        test rax, rax
        jz 1f
        call poke
1:
        lea rdi, [rip + sw_irq]
        call find_switch
        test rax, rax
        jz 1f
        call irq_test
        test eax, eax
        jnz no_irq
1:
        /* The e820 map. */
        mov rsi, [rip + boot_params]
        movzx ebx, byte ptr [rsi + 0x1e8]
        test ebx, ebx
        jz bad_e820
        lea r12, [rsi + 0x2d0]
2:      lea rdi, [rip + msg_e820]
        call puts
        mov rax, [r12]
        mov ecx, 16
        call put_hex
        mov al, '-'
        call putc
        mov rax, [r12]
        add rax, [r12 + 8]
        dec rax
        mov ecx, 16
        call put_hex
        mov eax, dword ptr [r12 + 16]
        lea rdi, [rip + msg_ram]
        cmp eax, 1
        je 3f
        lea rdi, [rip + msg_reserved]
        cmp eax, 2
        je 3f
        lea rdi, [rip + msg_type]
        call puts
        mov eax, dword ptr [r12 + 16]
        call put_dec
        jmp 4f
3:      call puts
4:      call newline
        add r12, 20
        dec ebx
        jnz 2b

        /* The initrd. */
        call initrd_range
        lea rdi, [rip + msg_initrd]
        call puts
        test r13, r13
        jz 6f
        mov rax, r12
        mov ecx, 16
        call put_hex
        mov al, ' '
        call putc
        mov rax, r13
        call put_dec
        lea rdi, [rip + msg_fnv]
        call puts
        mov eax, 0x811c9dc5
        mov rcx, r13
        mov rsi, r12
5:      movzx edx, byte ptr [rsi]
        xor eax, edx
        imul eax, eax, 0x01000193
        inc rsi
        dec rcx
        jnz 5b
        mov ecx, 8
        call put_hex
        jmp 7f
6:      lea rdi, [rip + msg_none]
        call puts
7:      call newline

        /* The vCPUs the MP table describes. */
        call count_cpus
        mov [rip + ncpus], eax
        lea rdi, [rip + msg_vcpus]
        call puts
        mov eax, [rip + ncpus]
        call put_dec
        call newline
        lea rdi, [rip + msg_cpu0]
        call puts
        cmp dword ptr [rip + ncpus], 1
        jbe all_up
        call start_aps
        test eax, eax
        jnz missing_cpu

all_up:
        lea rdi, [rip + msg_done]
        call puts
        movzx eax, byte ptr [rip + exit_status]
        jmp stop

bad_params:
        lea rdi, [rip + msg_bad_params]
        call puts
        mov eax, 2
        jmp stop
bad_exit:
        lea rdi, [rip + msg_bad_exit]
        call puts
        mov eax, 2
        jmp stop
bad_e820:
        lea rdi, [rip + msg_bad_e820]
        call puts
        mov eax, 2
        jmp stop
missing_cpu:
        lea rdi, [rip + msg_missing]
        call puts
        mov eax, [rip + ap_count]
        inc eax
        call put_dec
        lea rdi, [rip + msg_of]
        call puts
        mov eax, [rip + ncpus]
        call put_dec
        call newline
        mov eax, 3
no_irq:
        lea rdi, [rip + msg_no_irq]
        call puts
        mov eax, 4
stop:   mov dx, DEBUG_EXIT
        out dx, al
        /* The VMM stops at the write; if it does not, halt for good. */
9:      cli
        hlt
        jmp 9b

hang:   lea rdi, [rip + msg_hang]
        call puts
1:      jmp 1b

triple_fault:
        lea rdi, [rip + msg_triple]
        call puts
        lidt [rip + null_idtr]
        mov ax, 0x78                    /* past the GDT's limit: #GP, no IDT: shutdown */
        mov ds, ax
        jmp 9b

/* Unknown ports and unmapped MMIO: a VMM must ignore them and go on. */
poke:   push rbx
        lea rdi, [rip + msg_poke]
        call puts
        mov ecx, 300
        mov dx, 0x1234
1:      out dx, al
        loop 1b
        mov dx, 0xcf8                   /* PCI address 0:0.0: the host bridge (a device) */
        mov eax, 0x80000000
        out dx, eax
        mov dx, 0x2000
        in al, dx
        mov ebx, 0xd0000000             /* in the MMIO gap, nothing there */
        mov dword ptr [rbx], 0x12345678
        mov eax, dword ptr [rbx]
        mov ecx, 8
        call put_hex
        mov al, ' '
        call putc
        mov ebx, 0xfed00000             /* where an HPET would be */
        mov eax, dword ptr [rbx]
        mov ecx, 8
        call put_hex
        call newline
        pop rbx
        ret

/* COM1's transmitter-empty interrupt, through I/O APIC pin 4 to this vCPU's local APIC as
   IRQ_VECTOR; eax = 0 once the handler has run, 1 when no interrupt came (~2 s). */
irq_test:
        push rbx
        lea rdi, [rip + msg_irq]
        call puts
        /* An IDT whose only gate is IRQ_VECTOR's: a 64-bit interrupt gate in this CS. */
        lea rax, [rip + irq_handler]
        lea rdi, [rip + idt + IRQ_VECTOR * 16]
        mov word ptr [rdi], ax
        mov word ptr [rdi + 2], cs
        mov word ptr [rdi + 4], 0x8e00
        shr rax, 16
        mov word ptr [rdi + 6], ax
        shr rax, 16
        mov dword ptr [rdi + 8], eax
        mov dword ptr [rdi + 12], 0
        mov word ptr [rip + idtr], IRQ_VECTOR * 16 + 15
        lea rax, [rip + idt]
        mov [rip + idtr + 2], rax
        lidt [rip + idtr]
        /* Mask the 8259s (KVM wires the first to LINT0; the split irqchip has none). */
        mov al, 0xff
        out 0x21, al
        out 0xa1, al
        /* Enable the local APIC; pin 4: fixed, physical, edge, unmasked, to this APIC. */
        mov ebx, LAPIC
        mov dword ptr [rbx + 0xf0], 0x1ff
        mov ecx, dword ptr [rbx + 0x20]
        and ecx, 0xff000000
        mov ebx, IOAPIC
        mov dword ptr [rbx], 0x10 + 2 * 4 + 1
        mov dword ptr [rbx + 0x10], ecx
        mov dword ptr [rbx], 0x10 + 2 * 4
        mov dword ptr [rbx + 0x10], IRQ_VECTOR
        mov dword ptr [rbx], 1
        mov eax, dword ptr [rbx + 0x10]
        mov ecx, 8
        call put_hex
        /* COM1: OUT2 (the PC's interrupt gate), then enable the transmitter-empty
           interrupt; the transmitter is empty, so that raises it at once. */
        mov dx, SERIAL + 4
        mov al, 0x08
        out dx, al
        sti
        mov dx, SERIAL + 1
        mov al, 0x02
        out dx, al
        lea rdi, [rip + irq_count]
        mov esi, 1
        mov r9, 1 << 32                                 /* ~2 s of TSC */
        call wait_dword
        test eax, eax
        jz 2f
        cli
        call newline
        mov eax, 1
        pop rbx
        ret
2:      cli
        mov dx, SERIAL + 1
        xor eax, eax
        out dx, al
        lea rdi, [rip + msg_irq_got]
        call puts
        movzx eax, byte ptr [rip + irq_iir]
        mov ecx, 2
        call put_hex
        call newline
        xor eax, eax
        pop rbx
        ret

irq_handler:
        push rax
        push rdx
        push rbx
        mov dx, SERIAL + 2
        in al, dx                       /* IIR; reading it acknowledges the interrupt */
        mov [rip + irq_iir], al
        lock inc dword ptr [rip + irq_count]
        mov ebx, LAPIC
        mov dword ptr [rbx + 0xb0], 0   /* EOI */
        pop rbx
        pop rdx
        pop rax
        iretq

/* eax = number of enabled processors in the MP table (1 when there is none). */
count_cpus:
        mov esi, 0x9fc00
1:      cmp dword ptr [rsi], 0x5f504d5f                 /* "_MP_" */
        je 2f
        add esi, 16
        cmp esi, 0xa0000
        jb 1b
        mov eax, 1
        ret
2:      mov esi, dword ptr [rsi + 4]                    /* the configuration table */
        cmp dword ptr [rsi], 0x504d4350                 /* "PCMP" */
        jne 1b
        movzx ecx, word ptr [rsi + 34]                  /* entry count */
        add esi, 44
        xor eax, eax
3:      test ecx, ecx
        jz 6f
        cmp byte ptr [rsi], 0
        jne 4f
        test byte ptr [rsi + 3], 1                      /* enabled */
        jz 5f
        inc eax
5:      add esi, 20
        dec ecx
        jmp 3b
4:      add esi, 8
        dec ecx
        jmp 3b
6:      ret

/* Starts the APs; eax = 0 once all ncpus - 1 have announced themselves, else 1. */
start_aps:
        lea rsi, [rip + ap_tramp]
        mov edi, TRAMPOLINE
        mov ecx, ap_tramp_end - ap_tramp
        rep movsb
        mov ebx, LAPIC
        mov dword ptr [rbx + 0xf0], 0x1ff               /* SVR: APIC enabled */
        mov dword ptr [rbx + 0x310], 0
        mov dword ptr [rbx + 0x300], 0x000c4500         /* INIT, all excluding self */
        mov dword ptr [rbx + 0x300], 0x000c4600 | (TRAMPOLINE >> 12)    /* SIPI */
        mov dword ptr [rbx + 0x300], 0x000c4600 | (TRAMPOLINE >> 12)
        lea rdi, [rip + ap_count]
        mov esi, [rip + ncpus]
        dec esi
        mov r9, 1 << 35                                 /* ~10 s of TSC */
        jmp wait_dword

/* eax = 0 once the dword at rdi reaches esi (unsigned), 1 after r9 TSC ticks. */
wait_dword:
        rdtsc
        shl rdx, 32
        or rax, rdx
        mov r8, rax
1:      cmp dword ptr [rdi], esi
        jae 2f
        pause
        rdtsc
        shl rdx, 32
        or rax, rdx
        sub rax, r8
        cmp rax, r9
        jb 1b
        mov eax, 1
        ret
2:      xor eax, eax
        ret

/* The 64-bit side of the real-mode entry: rsi = the setup header's copy. */
startup_legacy:
        cli
        lea rsp, [rip + stack_top]
        mov esi, esi
        mov [rip + boot_params], rsi
        lea rdi, [rip + msg_legacy]
        call puts
        mov rsi, [rip + boot_params]
        mov eax, dword ptr [rsi + 0x228]                /* cmd_line_ptr */
        mov [rip + cmdline], rax
        call print_cmdline
        lea rdi, [rip + sw_fwcfg]
        call find_switch
        test rax, rax
        jnz 2f
        xor eax, eax
        jmp stop
2:      call fwcfg_probe
        jmp stop

/* cvm.test=evidence[:TYPE[@N]]: the initrd as the evidence line; with @N (decimal) its
   first N bytes are the evidence and the rest the auxiliary data. rdi = the command line
   after the switch. eax = the status. */
evidence:
        lea rsi, [rip + ev_snp]
        cmp byte ptr [rdi], ':'
        jne 1f
        lea rsi, [rdi + 1]
1:      mov rbx, rsi
        call initrd_range
        test r13, r13
        jz 4f
        push r14
        mov r14, r13                                    /* the evidence's length */
        lea rdi, [rip + msg_evidence]
        call puts
        mov dx, SERIAL
2:      mov al, [rbx]                                   /* the type, to a space or @ */
        test al, al
        jz 3f
        cmp al, ' '
        je 3f
        cmp al, '@'
        je 5f
        out dx, al
        inc rbx
        jmp 2b
5:      inc rbx                                         /* @N: decimal, at most the initrd */
        xor r14d, r14d
6:      movzx eax, byte ptr [rbx]
        sub eax, '0'
        cmp eax, 9
        ja 7f
        imul r14, r14, 10
        add r14, rax
        inc rbx
        cmp r14, r13
        jbe 6b
7:      cmp r14, r13
        jbe 3f
        mov r14, r13
3:      mov al, ' '
        mov dx, SERIAL
        out dx, al
        mov rsi, r12
        mov rcx, r14
        call base64
        cmp r14, r13                                    /* auxiliary data left */
        jae 8f
        mov al, ' '
        out dx, al
        lea rsi, [r12 + r14]
        mov rcx, r13
        sub rcx, r14
        call base64
8:      call newline
        pop r14
        xor eax, eax
        ret
4:      lea rdi, [rip + msg_ev_none]
        call puts
        mov eax, 2
        ret

/* rcx bytes at rsi in standard base64, with padding, on the serial port. */
base64:
        lea r8, [rip + b64_chars]
        mov dx, SERIAL
1:      cmp rcx, 3
        jb 2f
        movzx r9d, byte ptr [rsi]
        shl r9d, 8
        movzx eax, byte ptr [rsi + 1]
        or r9d, eax
        shl r9d, 8
        movzx eax, byte ptr [rsi + 2]
        or r9d, eax
        mov r10d, 4
        call b64_emit
        add rsi, 3
        sub rcx, 3
        jmp 1b
2:      test rcx, rcx
        jz 4f
        movzx r9d, byte ptr [rsi]
        shl r9d, 16
        cmp rcx, 2
        jb 3f
        movzx eax, byte ptr [rsi + 1]
        shl eax, 8
        or r9d, eax
3:      lea r10d, [ecx + 1]                             /* 2 or 3 characters */
        call b64_emit
        mov al, '='
        out dx, al
        cmp rcx, 2
        je 4f
        out dx, al
4:      ret

/* The top r10d sextets of the 24 bits in r9d, as base64 characters (r8: the alphabet). */
b64_emit:
        mov r11d, 18
1:      mov eax, r9d
        push rcx
        mov ecx, r11d
        shr eax, cl
        pop rcx
        and eax, 63
        mov al, [r8 + rax]
        out dx, al
        sub r11d, 6
        dec r10d
        jnz 1b
        ret

/* One fw_cfg DMA transfer: control in edi (host order), length in ecx, guest address in
   rdx. eax = the control word QEMU writes back (0: done). Clobbers r8. */
fw_cfg_dma:
        lea r8, [rip + dma_desc]
        mov eax, edi
        bswap eax
        mov [r8], eax
        mov eax, ecx
        bswap eax
        mov [r8 + 4], eax
        mov rax, rdx
        bswap rax
        mov [r8 + 8], rax
        mov rax, r8
        shr rax, 32
        bswap eax
        mov dx, FW_CFG_DMA_HI
        out dx, eax
        mov eax, r8d
        bswap eax
        mov dx, FW_CFG_DMA_LO
        out dx, eax                     /* the write of the low half starts it */
        mov eax, [r8]
        bswap eax
        ret

/* eax = the u32 (little-endian) item edi. Stops with status 5 if the read fails. */
fw_cfg_u32:
        shl edi, 16
        or edi, 0x0a                    /* SELECT | READ */
        mov ecx, 4
        lea rdx, [rip + fw_word]
        call fw_cfg_dma
        test eax, eax
        jnz fw_cfg_error
        mov eax, [rip + fw_word]
        ret

/* Prints "fw_cfg NAME SIZE SHA256" for item r14d (its size r15d), name at r12. */
fw_cfg_hash:
        lea rdi, [rip + msg_fw_cfg]
        call puts
        mov rdi, r12
        call puts
        mov al, ' '
        call putc
        mov eax, r15d
        call put_dec
        mov al, ' '
        call putc
        call sha256_init
        mov edi, r14d
        shl edi, 16
        or edi, 0x0a                    /* the first chunk selects the item */
1:      test r15d, r15d
        jz 2f
        mov ecx, FW_CFG_CHUNK
        cmp r15d, ecx
        cmovb ecx, r15d
        sub r15d, ecx
        push rcx
        lea rdx, [rip + fw_chunk]
        call fw_cfg_dma
        pop rcx
        test eax, eax
        jnz fw_cfg_error
        lea rsi, [rip + fw_chunk]
        call sha256_update
        mov edi, 0x02                   /* READ on from there */
        jmp 1b
2:      call sha256_final
        jmp newline

/* The cvm.test=fwcfg probe: eax = 0 after printing everything. */
fwcfg_probe:
        push r12
        push r13
        push r14
        push r15
        mov edi, 0                      /* the signature */
        call fw_cfg_u32
        cmp eax, 0x554d4551             /* "QEMU" */
        jne fw_cfg_error
        lea rdi, [rip + msg_fw_sig]
        call puts
        mov edi, 1                      /* the feature word */
        call fw_cfg_u32
        mov ecx, 8
        call put_hex
        call newline
        mov edi, 0x19                   /* the directory's count (big-endian) */
        call fw_cfg_u32
        bswap eax
        cmp eax, FW_CFG_MAX_FILES
        ja fw_cfg_error
        mov r13d, eax
        test eax, eax
        jz 2f
        mov ecx, eax
        shl ecx, 6                      /* 64 bytes an entry, read on from the count */
        mov edi, 0x02
        lea rdx, [rip + fw_dir]
        call fw_cfg_dma
        test eax, eax
        jnz fw_cfg_error
        lea rbx, [rip + fw_dir]
1:      mov r15d, [rbx]
        bswap r15d                      /* size */
        movzx r14d, word ptr [rbx + 4]
        rol r14w, 8                     /* select */
        lea r12, [rbx + 8]              /* name */
        mov byte ptr [rbx + 63], 0
        push rbx
        call fw_cfg_hash
        pop rbx
        add rbx, 64
        dec r13d
        jnz 1b
2:      lea r13, [rip + fw_items]
3:      movzx edi, word ptr [r13]       /* the size item */
        test edi, edi
        jz 4f
        call fw_cfg_u32
        mov r15d, eax
        movzx r14d, word ptr [r13 + 2]  /* the data item */
        lea r12, [r13 + 4]
        call fw_cfg_hash
        add r13, 12
        jmp 3b
4:      pop r15
        pop r14
        pop r13
        pop r12
        xor eax, eax
        ret

fw_cfg_error:
        lea rdi, [rip + msg_fw_err]
        call puts
        mov eax, 5
        jmp stop

/* SHA-256 (FIPS 180-4) over the bytes given to sha256_update, printed by sha256_final. */
sha256_init:
        lea rsi, [rip + sha_iv]
        lea rdi, [rip + sha_h]
        mov ecx, 8
1:      mov eax, [rsi]
        mov [rdi], eax
        add rsi, 4
        add rdi, 4
        loop 1b
        mov qword ptr [rip + sha_len], 0
        mov dword ptr [rip + sha_fill], 0
        ret

/* Hashes rcx bytes at rsi. */
sha256_update:
        push r12
        push r13
        mov r12, rsi
        mov r13, rcx
        add [rip + sha_len], rcx
1:      test r13, r13
        jz 9f
        mov eax, [rip + sha_fill]
        test eax, eax
        jnz 2f
        cmp r13, 64
        jb 2f
        mov rsi, r12
        call sha256_block
        add r12, 64
        sub r13, 64
        jmp 1b
2:      lea rdi, [rip + sha_buf]
        mov dl, [r12]
        mov [rdi + rax], dl
        inc r12
        dec r13
        inc eax
        mov [rip + sha_fill], eax
        cmp eax, 64
        jb 1b
        mov dword ptr [rip + sha_fill], 0
        lea rsi, [rip + sha_buf]
        call sha256_block
        jmp 1b
9:      pop r13
        pop r12
        ret

/* Pads, and prints the digest in hex. */
sha256_final:
        mov rax, [rip + sha_len]
        shl rax, 3
        bswap rax
        mov [rip + sha_bits], rax
        lea rsi, [rip + sha_pad]
        mov ecx, 1
        call sha256_update
1:      cmp dword ptr [rip + sha_fill], 56
        je 2f
        lea rsi, [rip + sha_pad + 1]
        mov ecx, 1
        call sha256_update
        jmp 1b
2:      lea rsi, [rip + sha_bits]
        mov ecx, 8
        call sha256_update
        lea rbx, [rip + sha_h]
        mov r8d, 8
3:      mov eax, [rbx]
        mov ecx, 8
        push r8
        call put_hex_digits
        pop r8
        add rbx, 4
        dec r8d
        jnz 3b
        ret

/* One 64-byte block at rsi into sha_h. Keeps rbx, rbp, r12-r15. */
sha256_block:
        push rbx
        push rbp
        push r12
        push r13
        push r14
        push r15
        lea rdi, [rip + sha_w]
        xor ecx, ecx
1:      mov eax, [rsi + rcx * 4]
        bswap eax
        mov [rdi + rcx * 4], eax
        inc ecx
        cmp ecx, 16
        jb 1b
2:      mov eax, [rdi + rcx * 4 - 8]                    /* s1(w[i-2]) */
        mov edx, eax
        ror edx, 17
        mov ebx, eax
        ror ebx, 19
        xor edx, ebx
        shr eax, 10
        xor edx, eax
        mov eax, [rdi + rcx * 4 - 60]                   /* s0(w[i-15]) */
        mov ebx, eax
        ror ebx, 7
        mov ebp, eax
        ror ebp, 18
        xor ebx, ebp
        shr eax, 3
        xor ebx, eax
        add edx, ebx
        add edx, [rdi + rcx * 4 - 28]                   /* w[i-7] */
        add edx, [rdi + rcx * 4 - 64]                   /* w[i-16] */
        mov [rdi + rcx * 4], edx
        inc ecx
        cmp ecx, 64
        jb 2b
        lea rsi, [rip + sha_h]
        mov r8d, [rsi]                                  /* a..h */
        mov r9d, [rsi + 4]
        mov r10d, [rsi + 8]
        mov r11d, [rsi + 12]
        mov r12d, [rsi + 16]
        mov r13d, [rsi + 20]
        mov r14d, [rsi + 24]
        mov r15d, [rsi + 28]
        lea rsi, [rip + sha_k]
        xor ecx, ecx
3:      mov eax, r12d                                   /* T1 = h + S1(e) + ch + k + w */
        ror eax, 6
        mov ebx, r12d
        ror ebx, 11
        xor eax, ebx
        mov ebx, r12d
        ror ebx, 25
        xor eax, ebx
        mov ebx, r12d
        and ebx, r13d
        mov edx, r12d
        not edx
        and edx, r14d
        xor ebx, edx
        add eax, ebx
        add eax, r15d
        add eax, [rsi + rcx * 4]
        add eax, [rdi + rcx * 4]
        mov ebx, r8d                                    /* T2 = S0(a) + maj */
        ror ebx, 2
        mov edx, r8d
        ror edx, 13
        xor ebx, edx
        mov edx, r8d
        ror edx, 22
        xor ebx, edx
        mov edx, r8d
        and edx, r9d
        mov ebp, r8d
        and ebp, r10d
        xor edx, ebp
        mov ebp, r9d
        and ebp, r10d
        xor edx, ebp
        add ebx, edx
        mov r15d, r14d
        mov r14d, r13d
        mov r13d, r12d
        mov r12d, r11d
        add r12d, eax
        mov r11d, r10d
        mov r10d, r9d
        mov r9d, r8d
        mov r8d, eax
        add r8d, ebx
        inc ecx
        cmp ecx, 64
        jb 3b
        lea rsi, [rip + sha_h]
        add [rsi], r8d
        add [rsi + 4], r9d
        add [rsi + 8], r10d
        add [rsi + 12], r11d
        add [rsi + 16], r12d
        add [rsi + 20], r13d
        add [rsi + 24], r14d
        add [rsi + 28], r15d
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret

/* r12 = the initrd's address, r13 = its size (zero page ramdisk_image/size and their
   ext_ high halves). */
initrd_range:
        mov rsi, [rip + boot_params]
        mov r12d, dword ptr [rsi + 0x218]
        mov eax, dword ptr [rsi + 0xc0]
        shl rax, 32
        or r12, rax
        mov r13d, dword ptr [rsi + 0x21c]
        mov eax, dword ptr [rsi + 0xc4]
        shl rax, 32
        or r13, rax
        ret

/* "cmdline: ..." and a newline. */
print_cmdline:
        lea rdi, [rip + msg_cmdline]
        call puts
        mov rdi, [rip + cmdline]
        test rdi, rdi
        jz 1f
        call puts
1:      jmp newline

/* rax = the address after "switch" (rdi, NUL-terminated) in the command line, or 0. */
find_switch:
        mov rsi, [rip + cmdline]
        test rsi, rsi
        jz 4f
1:      cmp byte ptr [rsi], 0
        je 4f
        xor ecx, ecx
2:      mov al, [rdi + rcx]
        test al, al
        jz 3f
        cmp al, [rsi + rcx]
        jne 5f
        inc ecx
        jmp 2b
3:      lea rax, [rsi + rcx]
        ret
5:      inc rsi
        jmp 1b
4:      xor eax, eax
        ret

/* eax = the decimal number at rdi. */
parse_dec:
        xor eax, eax
1:      movzx ecx, byte ptr [rdi]
        sub ecx, '0'
        cmp ecx, 9
        ja 2f
        imul eax, eax, 10
        add eax, ecx
        inc rdi
        jmp 1b
2:      ret

puts:   mov dx, SERIAL
1:      mov al, [rdi]
        test al, al
        jz 2f
        out dx, al
        inc rdi
        jmp 1b
2:      ret

putc:   mov dx, SERIAL
        out dx, al
        ret

newline:
        mov al, 10
        jmp putc

/* rax in hex with "0x" and ecx digits. */
put_hex:
        push rax
        mov dx, SERIAL
        mov al, '0'
        out dx, al
        mov al, 'x'
        out dx, al
        pop rax
/* rax in hex, ecx digits, no prefix. */
put_hex_digits:
        mov dx, SERIAL
        mov r10, rax
1:      lea r11d, [ecx * 4 - 4]
        mov rax, r10
        push rcx
        mov ecx, r11d
        shr rax, cl
        pop rcx
        and eax, 15
        cmp eax, 10
        jb 2f
        add eax, 'a' - '0' - 10
2:      add eax, '0'
        out dx, al
        dec ecx
        jnz 1b
        ret

/* rax in decimal. */
put_dec:
        lea rdi, [rip + dec_end]
        mov byte ptr [rdi], 0
        mov ecx, 10
1:      xor edx, edx
        div rcx
        add dl, '0'
        dec rdi
        mov [rdi], dl
        test rax, rax
        jnz 1b
        jmp puts

/* ---------------------------------------------------------------- AP trampoline */
/* Copied to TRAMPOLINE and entered in real mode (CS = TRAMPOLINE >> 4, IP = 0). */
        .code16
ap_tramp:
        cli
        .byte 0x66
        lgdt cs:[ap_gdtr - ap_tramp]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        .byte 0x66, 0xea                                /* jmp far 0x08:ap32 */
        .long TRAMPOLINE + ap32 - ap_tramp
        .word 0x08
        .code32
ap32:   mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov ebx, dword ptr ds:[LAPIC + 0x20]
        shr ebx, 24                                     /* local APIC ID */
1:      mov eax, 1
        xchg eax, dword ptr [print_lock]
        test eax, eax
        jnz 1b
        mov dx, SERIAL
        mov esi, offset msg_ap
2:      mov al, [esi]
        test al, al
        jz 3f
        out dx, al
        inc esi
        jmp 2b
3:      mov eax, ebx                                    /* the ID in decimal, < 256 */
        mov ecx, 100
        cmp eax, ecx
        jb 4f
        xor edx, edx
        div ecx
        add al, '0'
        mov dx, SERIAL
        out dx, al
        mov eax, edx
        mov ecx, 10
        xor edx, edx
        div ecx
        jmp 5f
4:      mov ecx, 10
        xor edx, edx
        div ecx
        test eax, eax
        jz 6f
5:      add al, '0'
        mov cl, dl
        mov dx, SERIAL
        out dx, al
        mov dl, cl
6:      mov al, dl
        add al, '0'
        mov dx, SERIAL
        out dx, al
        mov esi, offset msg_up
7:      mov al, [esi]
        test al, al
        jz 8f
        out dx, al
        inc esi
        jmp 7b
8:      mov dword ptr [print_lock], 0
        lock inc dword ptr [ap_count]
9:      cli
        hlt
        jmp 9b
        .p2align 3
ap_gdt: .quad 0
        .quad 0x00cf9b000000ffff                        /* 0x08: code32, flat */
        .quad 0x00cf93000000ffff                        /* 0x10: data, flat */
ap_gdtr:
        .word 23
        .long TRAMPOLINE + ap_gdt - ap_tramp
ap_tramp_end:
        .code64

/* ---------------------------------------------------------------- data */
        .section .rodata
msg_banner:     .asciz "cvm built-in guest: booted through the Linux 64-bit boot protocol\n"
msg_proto:      .asciz "boot protocol: "
msg_loader:     .asciz ", type_of_loader "
msg_cmdline:    .asciz "cmdline: "
msg_e820:       .asciz "e820: "
msg_ram:        .asciz " ram"
msg_reserved:   .asciz " reserved"
msg_type:       .asciz " type "
msg_initrd:     .asciz "initrd: "
msg_fnv:        .asciz " bytes fnv1a32 "
msg_none:       .asciz "none"
msg_vcpus:      .asciz "vcpus: "
msg_cpu0:       .asciz "vcpu 0 up (bootstrap)\n"
msg_ap:         .asciz "vcpu "
msg_up:         .asciz " up\n"
msg_done:       .asciz "cvm built-in guest: done\n"
msg_bad_params: .asciz "error: boot_params has no HdrS header\n"
msg_bad_e820:   .asciz "error: the e820 map is empty\n"
msg_bad_exit:   .asciz "error: cvm.exit= takes a status from 0 to 255\n"
msg_missing:    .asciz "error: vcpus up: "
msg_of:         .asciz " of "
msg_hang:       .asciz "cvm.test=hang: spinning forever\n"
msg_triple:     .asciz "cvm.test=triple: faulting with no IDT\n"
msg_poke:       .asciz "cvm.test=poke: unknown ports and MMIO: "
msg_irq:        .asciz "cvm.test=irq: I/O APIC version "
msg_irq_got:    .asciz ", COM1 interrupt on vector 0x30, IIR "
msg_no_irq:     .asciz "error: no interrupt from COM1\n"
sw_exit:        .asciz "cvm.exit="
sw_hang:        .asciz "cvm.test=hang"
sw_poke:        .asciz "cvm.test=poke"
sw_triple:      .asciz "cvm.test=triple"
sw_irq:         .asciz "cvm.test=irq"
sw_fwcfg:       .asciz "cvm.test=fwcfg"
sw_evidence:    .asciz "cvm.test=evidence"
ev_snp:         .asciz "snp"
msg_evidence:   .asciz "CVM-EVIDENCE 1 "
msg_ev_none:    .asciz "error: cvm.test=evidence needs an initrd (the evidence)\n"
b64_chars:      .ascii "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
msg_legacy:     .asciz "cvm built-in guest: booted through the real-mode entry\n"
msg_fw_sig:     .asciz "fw_cfg signature QEMU features "
msg_fw_cfg:     .asciz "fw_cfg "
msg_fw_err:     .asciz "error: fw_cfg is missing or a DMA transfer failed\n"
/* The traditional items: size key, data key, name (8 bytes with its NUL). */
        .p2align 2
fw_items:       .word 0x08, 0x11
                .ascii "kernel\0\0"
                .word 0x17, 0x18
                .ascii "setup\0\0\0"
                .word 0x0b, 0x12
                .ascii "initrd\0\0"
                .word 0x14, 0x15
                .ascii "cmdline\0"
                .word 0
sha_pad:        .byte 0x80, 0
        .p2align 2
sha_iv:         .long 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
                .long 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
sha_k:          .long 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
                .long 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
                .long 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
                .long 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
                .long 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
                .long 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
                .long 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
                .long 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
        .p2align 3
null_idtr:      .word 0
                .quad 0

        .bss
        .p2align 12
stack:          .space 4096
stack_top:
boot_params:    .quad 0
cmdline:        .quad 0
ncpus:          .long 0
ap_count:       .long 0
print_lock:     .long 0
exit_status:    .byte 0
dec_buf:        .space 24
dec_end:        .byte 0
irq_count:      .long 0
irq_iir:        .byte 0
        .p2align 4
dma_desc:       .space 16
fw_word:        .long 0
sha_fill:       .long 0
sha_len:        .quad 0
sha_bits:       .quad 0
sha_h:          .space 32
sha_buf:        .space 64
sha_w:          .space 256
fw_dir:         .space 64 * FW_CFG_MAX_FILES
        .p2align 12
fw_chunk:       .space FW_CFG_CHUNK
        .p2align 4
idtr:           .space 16
idt:            .space 16 * (IRQ_VECTOR + 1)
