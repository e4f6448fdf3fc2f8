#!/usr/bin/env python3
"""Runs fovea-kernels' AVX-512 kernels on an emulated CPU and checks them against f64 references.

    python3 emulate.py LIBFOVEA_KERNELS_EMULATED.so [--isa avx512] [--case N]

The cases (inputs, outputs, references) are built by the shared library on the real CPU. Each case's kernels then run
on a Bochs CPU that has AVX-512 (package `bochscpu-python`), in 64-bit user mode, with every readable page of this
process mapped at its own address: the emulated CPU executes the library's machine code in place and writes the
outputs into this process's memory, which the library then compares with the references on the real CPU.

A case passes when the emulated call returns (to a trap page holding `ud2`) with every output within tolerance. The
run fails if any case fails, if the CPU faults elsewhere, or if the AVX-512 path ran no EVEX-encoded instruction (so a
dispatch that silently fell back to AVX2 cannot pass for AVX-512).
"""

import argparse
import ctypes
import mmap
import os
import sys
import time

PAGE = 4096
ISA_NUMBERS = {"portable": 0, "avx2": 1, "avx512": 2}
TOLERANCE = 1e-4
# Least cosine similarity of the network's embedding with the portable path's (fp32 with another summation order).
NETWORK_COSINE = 0.99999
# Guest-physical addresses: the page tables from 1 MiB, the process's pages from 1 GiB (far above the tables).
PML4_GPA = 0x10_0000
FIRST_PAGE_GPA = 0x4000_0000
STACK_BYTES = 1 << 20
# Pages the emulated CPU must not touch: the kernel's time pages and the legacy vsyscall page.
SPECIAL = ("[vvar]", "[vvar_vclock]", "[vsyscall]")
# Control bits for SSE and AVX state: CR4.OSFXSR, CR4.OSXMMEXCPT, CR4.OSXSAVE; XCR0 enables x87, SSE, AVX, the
# opmask registers and all 32 512-bit registers.
CR4_SIMD = (1 << 9) | (1 << 10) | (1 << 18)
XCR0_AVX512 = 0xE7
INVALID_OPCODE = 6
SYSCALL_TRAP = 64
EVEX_PREFIX = 0x62


def load_library(path):
    lib = ctypes.CDLL(path)
    lib.fovea_case_count.restype = ctypes.c_size_t
    lib.fovea_case_new.restype = ctypes.c_void_p
    lib.fovea_case_new.argtypes = [ctypes.c_size_t]
    lib.fovea_case_run.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.fovea_case_clear.argtypes = [ctypes.c_void_p]
    lib.fovea_case_error.restype = ctypes.c_float
    lib.fovea_case_error.argtypes = [ctypes.c_void_p]
    lib.fovea_case_describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.fovea_case_free.argtypes = [ctypes.c_void_p]
    lib.fovea_isa_supported.restype = ctypes.c_bool
    lib.fovea_isa_supported.argtypes = [ctypes.c_uint32]
    lib.fovea_net_new.restype = ctypes.c_void_p
    lib.fovea_net_new.argtypes = [ctypes.c_size_t, ctypes.c_uint64]
    lib.fovea_net_run.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.fovea_net_agreement.restype = ctypes.c_float
    lib.fovea_net_agreement.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32]
    lib.fovea_net_free.argtypes = [ctypes.c_void_p]
    return lib


def describe(lib, case):
    buf = ctypes.create_string_buffer(200)
    lib.fovea_case_describe(case, buf, len(buf))
    return buf.value.decode()


def readable_pages():
    """Every readable page of this process, from /proc/self/maps."""
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        if fields[1].startswith("r") and name not in SPECIAL:
            yield from range(lo, hi, PAGE)


def host_fs_base():
    """This thread's FS base (thread-local storage), so code that reaches it finds the same memory."""
    libc = ctypes.CDLL(None, use_errno=True)
    base = ctypes.c_uint64()
    arch_prctl, arch_get_fs = 158, 0x1003
    if libc.syscall(arch_prctl, arch_get_fs, ctypes.byref(base)) != 0:
        raise OSError(ctypes.get_errno(), "arch_prctl(ARCH_GET_FS)")
    return base.value


def address_of(buffer):
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


class EmulatedCpu:
    """A Bochs CPU in 64-bit user mode whose memory is this process's own readable pages."""

    def __init__(self, bochscpu):
        self.bochscpu = bochscpu
        memory = bochscpu.memory
        self.session = bochscpu.Session()
        self.session.missing_page_handler = self._missing_page
        # The stack and a trap page holding `ud2`, where every call returns to (and stops).
        self.stack = mmap.mmap(-1, STACK_BYTES)
        self.trap = mmap.mmap(-1, PAGE)
        self.trap.write(b"\x0f\x0b")
        self.trap_address = address_of(self.trap)
        # A `syscall` jumps here: there is no kernel to answer it, so it stops the run as a failure.
        self.trap.seek(SYSCALL_TRAP)
        self.trap.write(b"\x0f\x0b")
        self.fs_base = host_fs_base()
        # Kept for the CPU's lifetime: the tables' host pages go when this object does.
        self.tables = tables = memory.PageMapLevel4Table()
        gpa = FIRST_PAGE_GPA
        started = time.time()
        for va in readable_pages():
            memory.page_insert(gpa, va)
            tables.insert(va, gpa, 1)
            gpa += PAGE
        self.pages = (gpa - FIRST_PAGE_GPA) // PAGE
        for hva, table_gpa in tables.commit(PML4_GPA):
            assert table_gpa < FIRST_PAGE_GPA, "page tables overlap the mapped pages"
            memory.page_insert(table_gpa, hva)
        self.map_seconds = time.time() - started
        self.evex_decoded = 0
        self.fault = None

    @staticmethod
    def _missing_page(gpa):
        raise RuntimeError(f"the emulated CPU reached guest-physical page {gpa:#x}, which maps no host page")

    def _segment(self, selector, attr, base=0):
        seg = self.bochscpu.Segment()
        seg.present = True
        seg.selector = selector
        seg.base = base
        seg.limit = 0xFFFF_FFFF
        seg.attr = attr
        return seg

    def _state(self, rip, args):
        state = self.bochscpu.State()
        self.bochscpu.cpu.set_long_mode(state)
        state.cr3 = PML4_GPA
        state.cr4 = state.cr4 | CR4_SIMD
        state.xcr0 = XCR0_AVX512
        state.mxcsr = 0x1F80  # every floating-point exception masked, as Linux starts a thread
        state.fpcw = 0x37F
        state.rflags = 0x2
        state.lstar = self.trap_address + SYSCALL_TRAP
        # 64-byte aligned top; on entry the return address sits where a `call` would have put it.
        top = (address_of(self.stack) + STACK_BYTES - 128) & ~63
        rsp = top - 8
        ctypes.c_uint64.from_address(rsp).value = self.trap_address
        state.rsp = rsp
        state.rip = rip
        for register, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
            setattr(state, register, value)
        state.cs = self._segment(0x33, 0x22FB)
        data = self._segment(0x2B, 0xCF3)
        state.ds = state.ss = state.es = state.gs = data
        state.fs = self._segment(0x2B, 0xCF3, self.fs_base)
        return state

    def _exception(self, session, cpu_id, vector, error_code):
        self.fault = (vector, error_code)
        session.stop()

    def _opcode(self, session, cpu_id, insn, opcode, length, is32, is64):
        # Called once per instruction decoded (Bochs caches decoded traces), not per instruction executed.
        # The bindings pass the instruction's first byte as an integer.
        first = opcode if isinstance(opcode, int) else opcode[0]
        if first == EVEX_PREFIX:
            self.evex_decoded += 1

    def call(self, function, *args):
        """Runs `function(*args)` (integer arguments, System V) until it returns; raises if it faults instead."""
        self.fault = None
        self.session.cpu.state = self._state(function, args)
        hook = self.bochscpu.Hook()
        hook.exception = self._exception
        hook.opcode = self._opcode
        self.session.run([hook])
        end = self.session.cpu.state
        # Bochs reports the `ud2` with rip at or just past it.
        at = end.rip - self.trap_address
        if self.fault == (INVALID_OPCODE, 0) and SYSCALL_TRAP <= at <= SYSCALL_TRAP + 2:
            raise RuntimeError(f"the emulated code made system call {end.rax} (there is no kernel to answer it)")
        if self.fault != (INVALID_OPCODE, 0) or not 0 <= at <= 2:
            raise RuntimeError(f"the emulated call faulted: exception {self.fault} at rip {end.rip:#x} (cr2 {end.cr2:#x})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="path of libfovea_kernels_emulated.so")
    parser.add_argument("--isa", default="avx512", choices=sorted(ISA_NUMBERS))
    parser.add_argument("--case", type=int, help="run only this kernel case")
    parser.add_argument("--network", type=int, default=224, metavar="SIZE",
                        help="also embed one SIZE x SIZE image with the whole network (0: skip)")
    args = parser.parse_args()
    try:
        import bochscpu
        import bochscpu.cpu
        import bochscpu.memory
    except ImportError as e:
        sys.exit(f"cannot import bochscpu ({e}); scripts/setup.sh --test installs bochscpu-python")

    lib = load_library(args.library)
    isa = ISA_NUMBERS[args.isa]
    count = lib.fovea_case_count()
    indices = [args.case] if args.case is not None else range(count)
    cases = []
    for index in indices:
        case = lib.fovea_case_new(index)
        if not case:
            sys.exit(f"no case {index} (there are {count})")
        cases.append(case)
    net = None
    if args.network:
        net = lib.fovea_net_new(args.network, 7)
        if not net:
            sys.exit(f"cannot build the network case at size {args.network}")
        lib.fovea_net_run(net, ISA_NUMBERS["portable"])
    # Every buffer exists before the memory map is taken: the emulated CPU sees only pages mapped now.
    cpu = EmulatedCpu(bochscpu)
    print(f"mapped {cpu.pages} pages of this process in {cpu.map_seconds:.1f} s; "
          f"real CPU has {args.isa}: {lib.fovea_isa_supported(isa)}")
    run = ctypes.cast(lib.fovea_case_run, ctypes.c_void_p).value
    failures = []
    started = time.time()
    for case in cases:
        name = describe(lib, case)
        lib.fovea_case_clear(case)
        if lib.fovea_case_error(case) != float("inf"):
            failures.append(f"{name}: a cleared case does not fail")
            continue
        t = time.time()
        try:
            cpu.call(run, case, isa)
        except RuntimeError as e:
            failures.append(f"{name}: {e}")
            continue
        error = lib.fovea_case_error(case)
        verdict = "ok" if error < TOLERANCE else "FAILED"
        print(f"{verdict:6} {args.isa} on the emulated CPU: {name}: max error {error:.2e} ({time.time() - t:.2f} s)")
        if error >= TOLERANCE:
            failures.append(f"{name}: max error {error}")
    kernel_failures = len(failures)
    print(f"{len(cases) - kernel_failures} of {len(cases)} cases passed in {time.time() - started:.1f} s")
    if net:
        t = time.time()
        name = f"EfficientNet-Lite0 (random weights) on a {args.network}x{args.network} image"
        try:
            cpu.call(ctypes.cast(lib.fovea_net_run, ctypes.c_void_p).value, net, isa)
            agreement = lib.fovea_net_agreement(net, isa, ISA_NUMBERS["portable"])
            verdict = "ok" if agreement >= NETWORK_COSINE else "FAILED"
            print(f"{verdict:6} {args.isa} on the emulated CPU: {name}: 1 - cosine of the embedding with the portable "
                  f"path's on the real CPU {1 - abs(agreement):.1e}, same top class: {agreement > 0} "
                  f"({time.time() - t:.1f} s)")
            if agreement < NETWORK_COSINE:
                failures.append(f"{name}: agreement {agreement} (negative: the top classes differ)")
        except RuntimeError as e:
            failures.append(f"{name}: {e}")
        lib.fovea_net_free(net)
    print(f"{cpu.evex_decoded} distinct EVEX (AVX-512) instructions decoded")
    for case in cases:
        lib.fovea_case_free(case)
    if isa == ISA_NUMBERS["avx512"] and cpu.evex_decoded == 0:
        failures.append("the AVX-512 path ran no EVEX instruction")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # The bindings crash while tearing down at interpreter exit; every result is already out.
    os._exit(1 if failures else 0)


if __name__ == "__main__":
    main()
