// Process exit statuses of the softkvm command line. Documented in README.md
// ("Exit status"); tests check them by name. Values 0..63 belong to the guest: `softkvm
// run` exits with the byte the guest wrote to the debug-exit port (0 = pass).
#pragma once

namespace softkvm::cli {

// kExitOk is also the status of a guest that powered off (ACPI S5).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;          // bad option or argument (sysexits EX_USAGE)
inline constexpr int kExitBadInput = 65;       // malformed guest image or data file (EX_DATAERR)
inline constexpr int kExitNoInput = 66;        // file missing or unreadable (EX_NOINPUT)
inline constexpr int kExitUnavailable = 69;    // accelerator or feature absent on this host
inline constexpr int kExitSoftware = 70;       // softkvm internal error (EX_SOFTWARE)
inline constexpr int kExitIoError = 74;        // database or filesystem I/O error (EX_IOERR)
inline constexpr int kExitLimit = 75;          // an encryption-ID limit refused the launch
inline constexpr int kExitConflict = 76;       // request conflicts with state (busy, exists)
inline constexpr int kExitNotFound = 77;       // named group/lease/object does not exist
inline constexpr int kExitCorrupt = 78;        // database corrupt or of another version
inline constexpr int kExitGuestStalled = 121;  // guest stalled: deliveries that retire nothing
inline constexpr int kExitGuestReset = 122;    // guest reset the machine (a reboot)
inline constexpr int kExitGuestStopped = 123;  // guest halted for good without an exit code
inline constexpr int kExitInsnLimit = 124;     // --max-insns exhausted
inline constexpr int kExitTripleFault = 125;   // guest triple fault (shutdown)
inline constexpr int kExitEmulation = 126;     // instruction the emulator cannot execute

}  // namespace softkvm::cli
