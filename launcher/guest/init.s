/*
 * A Linux init for the opt-in firmware boot tests (launcher/tests/ovmf_boot.rs): a
 * static x86-64 ELF that writes one line to its console, then stops the VM through
 * cvm's debug-exit port (0x501, status 0) after iopl(3). Where user-mode port I/O is
 * not allowed (a TD: the port access raises #VE, which Linux turns into SIGSEGV), init
 * dies and the kernel's panic=-1 reboots the guest; the line is already out.
 */
        .intel_syntax noprefix
        .set SYS_WRITE, 1
        .set SYS_IOPL, 172
        .set SYS_EXIT, 60
        .set DEBUG_EXIT, 0x501

        .text
        .globl _start
_start:
        mov eax, SYS_WRITE
        mov edi, 1
        lea rsi, [rip + line]
        mov edx, line_end - line
        syscall
        mov eax, SYS_IOPL
        mov edi, 3
        syscall
        test eax, eax
        jnz 1f
        mov dx, DEBUG_EXIT
        xor eax, eax
        out dx, al
1:      mov eax, SYS_EXIT
        xor edi, edi
        syscall

        .section .rodata
line:   .ascii "cvm-init: the first init line\n"
line_end:
