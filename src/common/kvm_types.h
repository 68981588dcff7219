// Register sets and the exit record in the shapes of <linux/kvm.h> (struct kvm_regs,
// kvm_segment, kvm_sregs, the used parts of kvm_run). Shared by hv/ (which fills them for
// emu) and accel/ (which hands them to the VMM), so both accelerators speak one format.
#pragma once
#include <cstdint>
#include <string>

#include "common/kvm_abi.h"

namespace softkvm::abi {

// General-purpose registers, as struct kvm_regs.
struct Regs {
    uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rsp = 0, rbp = 0;
    uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    uint64_t rip = 0, rflags = 0x2;
};

// A segment register, as struct kvm_segment.
struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0, avl = 0;
    uint8_t unusable = 0;
};

struct DescriptorTable {
    uint64_t base = 0;
    uint16_t limit = 0;
};

// System registers, as struct kvm_sregs.
struct SpecialRegs {
    Segment cs, ds, es, fs, gs, ss, tr, ldt;
    DescriptorTable gdt, idt;
    uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0, apic_base = 0;
};

// The exit record, as the parts of struct kvm_run that softkvm uses. The VMM may write
// to it between runs exactly as it would to the mmap'ed kvm_run: for an IO IN exit it
// stores the value read into io.data, and the next run() completes the instruction.
struct RunState {
    // Input: if non-zero, run() returns at once with KVM_EXIT_INTR (kvm_run.immediate_exit).
    uint8_t immediate_exit = 0;

    // Output.
    uint32_t exit_reason = abi::KVM_EXIT_UNKNOWN;
    uint16_t flags = 0;  // abi::KVM_RUN_X86_*; reset at the start of every run()

    struct Io {
        uint8_t direction = 0;  // abi::KVM_EXIT_IO_IN / KVM_EXIT_IO_OUT
        uint8_t size = 0;       // 1, 2 or 4 bytes
        uint16_t port = 0;
        uint32_t count = 0;  // softkvm always reports 1 element per exit
        uint8_t data[8] = {};
    } io;

    struct Mmio {
        uint64_t phys_addr = 0;
        uint8_t data[8] = {};
        uint32_t len = 0;
        uint8_t is_write = 0;
    } mmio;

    struct Internal {
        uint32_t suberror = 0;
    } internal;

    struct Notify {
        uint32_t flags = 0;  // abi::KVM_NOTIFY_CONTEXT_INVALID
    } notify;

    // softkvm addition, valid when `flags` has KVM_RUN_X86_BUS_LOCK and `known` is set
    // (emu): the exact RIP of the instruction that took the bus lock (hardware reports
    // only the next RIP, spec §4) and whether it split a cache line (else: its memory
    // was not write-back).
    struct BusLock {
        uint8_t known = 0;
        uint8_t split = 0;
        uint64_t rip = 0;
    } bus_lock;

    // softkvm addition: a human-readable account of SHUTDOWN / INTERNAL_ERROR / NOTIFY
    // exits (the exception chain that led to a triple fault, the instruction that could
    // not be emulated, the deliveries that retired nothing). Empty for ordinary exits.
    std::string detail;
};

// Converts between segment-register shapes with kvm_segment's field names (abi::Segment,
// struct kvm_segment, the software CPU's Segment).
template <typename To, typename From>
To convert_segment(const From& s) {
    To o{};
    o.base = s.base;
    o.limit = s.limit;
    o.selector = s.selector;
    o.type = s.type & 0xF;
    o.present = s.present;
    o.dpl = s.dpl & 3;
    o.db = s.db;
    o.s = s.s;
    o.l = s.l;
    o.g = s.g;
    o.avl = s.avl;
    o.unusable = s.unusable;
    return o;
}

}  // namespace softkvm::abi
