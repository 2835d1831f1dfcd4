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
 *   cvm.exit=N       stop with status N (0-255) instead of 0
 *
 * Layout: 512-byte boot sector + 1 setup sector (the setup header at 0x1f1), then the
 * protected-mode kernel, loaded at 1 MiB; the 64-bit entry is at +0x200.
 */
        .intel_syntax noprefix

        .set SERIAL, 0x3f8
        .set DEBUG_EXIT, 0x501
        .set LAPIC, 0xfee00000
        .set IOAPIC, 0xfec00000
        .set IRQ_VECTOR, 0x30
        .set TRAMPOLINE, 0x1000         /* SIPI vector 1: the range left to the guest */
        .set LOAD, 0x100000

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
        lea rdi, [rip + msg_cmdline]
        call puts
        mov rdi, [rip + cmdline]
        test rdi, rdi
        jz 1f
        call puts
1:      call newline

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
        mov rsi, [rip + boot_params]
        mov r12d, dword ptr [rsi + 0x218]
        mov eax, dword ptr [rsi + 0xc0]
        shl rax, 32
        or r12, rax
        mov r13d, dword ptr [rsi + 0x21c]
        mov eax, dword ptr [rsi + 0xc4]
        shl rax, 32
        or r13, rax
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
        pop r10
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
idtr:           .space 16
idt:            .space 16 * (IRQ_VECTOR + 1)
