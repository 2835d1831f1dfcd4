/*
 * A 64 KiB firmware image for cvm's tests and the QEMU comparison: it starts at the reset
 * vector (0xfffffff0, real mode), enters 32-bit protected mode, builds identity page
 * tables in RAM at 0x1000-0x4fff (the first and the last 2 MiB), enters long mode, prints one line on the 16550 at 0x3f8,
 * then probes QEMU's fw_cfg device: the signature through the port interface (0x510 select,
 * 0x511 data) and the file directory's count through the DMA interface (a descriptor at
 * 0x6000, the data at 0x7000), printing "fw_cfg: QEMU, DMA, NN files" (NN in hex), and
 * writes 0 to the debug-exit port 0x501 (cvm: exit status 0; QEMU's isa-debug-exit at
 * that port: exit status 1). A DMA error writes 2 there instead.
 *
 * Linked at 0xffff0000 so that it ends at 4 GiB; a few hundred instructions run at CPL0.
 */
        .intel_syntax noprefix
        .set BASE, 0xffff0000
        .set SERIAL, 0x3f8
        .set DEBUG_EXIT, 0x501
        .set FW_CFG_SELECTOR, 0x510
        .set FW_CFG_DATA, 0x511
        .set FW_CFG_DMA, 0x514

        .text
        .code32
start32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        /* PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 (first GiB), PD 0x4000 (fourth GiB). */
        mov edi, 0x1000
        xor eax, eax
        mov ecx, 0x1000
        rep stosd
        mov dword ptr ds:[0x1000], 0x2003
        mov dword ptr ds:[0x2000], 0x3003
        mov dword ptr ds:[0x2018], 0x4003
        /* Two 2 MiB pages are enough: the first (RAM) and the last (this image). */
        mov dword ptr ds:[0x3000], 0x83
        mov dword ptr ds:[0x4000 + 511 * 8], 0xffe00083
        mov eax, cr4
        or eax, 0x20                    /* PAE */
        mov cr4, eax
        mov eax, 0x1000
        mov cr3, eax
        mov ecx, 0xc0000080             /* EFER.LME */
        rdmsr
        or eax, 0x100
        wrmsr
        mov eax, cr0
        or eax, 0x80000000              /* PG */
        mov cr0, eax
        .byte 0xea                      /* jmp far 0x18:start64 */
        .long start64
        .word 0x18

        .code64
start64:
        mov rsp, 0x9000                 /* a stack in RAM, below the DMA buffers' page */
        lea rsi, [rip + message]
        call print
        lea rsi, [rip + fw_cfg_message]
        call print
        /* The signature: select key 0, read four bytes. */
        mov dx, FW_CFG_SELECTOR
        xor eax, eax
        out dx, ax
        mov ecx, 4
4:      mov dx, FW_CFG_DATA
        in al, dx
        mov dx, SERIAL
        out dx, al
        loop 4b
        /* DMA, all fields big-endian: SELECT the directory (0x19) and READ 4 bytes. */
        mov dword ptr [0x6000], 0x0a001900
        mov dword ptr [0x6004], 0x04000000
        mov dword ptr [0x6008], 0
        mov dword ptr [0x600c], 0x00700000
        mov dx, FW_CFG_DMA
        xor eax, eax
        out dx, eax
        mov dx, FW_CFG_DMA + 4
        mov eax, 0x00600000
        out dx, eax
        cmp dword ptr [0x6000], 0       /* the control word comes back as 0 */
        jne dma_error
        lea rsi, [rip + dma_message]
        call print
        movzx ebx, byte ptr [0x7003]    /* the count's low byte */
        lea rdi, [rip + hex_digits]
        mov dx, SERIAL
        mov eax, ebx
        shr eax, 4
        mov al, [rdi + rax]
        out dx, al
        mov eax, ebx
        and eax, 0xf
        mov al, [rdi + rax]
        out dx, al
        lea rsi, [rip + files_message]
        call print
        xor eax, eax
        jmp 2f
dma_error:
        mov eax, 2
2:      mov dx, DEBUG_EXIT
        out dx, al
3:      cli
        hlt
        jmp 3b

/* Prints the NUL-terminated string at rsi on the serial port. */
print:  mov dx, SERIAL
1:      mov al, [rsi]
        test al, al
        jz 2f
        out dx, al
        inc rsi
        jmp 1b
2:      ret

message:
        .asciz "cvm test firmware: reset vector, protected mode, long mode: ok\n"
fw_cfg_message:
        .asciz "fw_cfg: "
dma_message:
        .asciz ", DMA, "
files_message:
        .asciz " files\n"
hex_digits:
        .ascii "0123456789abcdef"

        .p2align 3
gdt:    .quad 0
        .quad 0x00cf9b000000ffff        /* 0x08: code32, flat */
        .quad 0x00cf93000000ffff        /* 0x10: data, flat */
        .quad 0x00af9b000000ffff        /* 0x18: code64 */
gdtr:   .word 31
        .long gdt

/* Real mode, CS base 0xffff0000: load the GDT, set PE, jump to 32-bit code. */
        .org 0xff00
        .code16
start16:
        cli
        .byte 0x66
        lgdt cs:[gdtr - BASE]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        .byte 0x66, 0xea                /* jmp far 0x08:start32 */
        .long start32
        .word 0x08

        .org 0xfff0                     /* the reset vector */
        jmp start16
        .org 0x10000
