# CPU model and guest LBR options (spec §2.2: lbr-fmt under KVM's rule).
cli_test(cpu_model_unknown 64 "--cpu-model pentium: unknown model \\(known: skylake, broadwell\\)"
         ${SK} run --cpu-model pentium ${IMAGES}/good.elf)
cli_test(lbr_fmt_mismatch 64 "--lbr-fmt 4 does not match the skylake model's LBR format 5"
         ${SK} run --lbr-fmt 4 ${IMAGES}/good.elf)
cli_test(lbr_fmt_mismatch_broadwell 64 "--lbr-fmt 5 does not match the broadwell model's LBR format 4"
         ${SK} run --cpu-model broadwell --lbr-fmt 5 ${IMAGES}/good.elf)
cli_test(lbr_fmt_out_of_range 64 "--lbr-fmt 64: a format is 0-63" ${SK} run --lbr-fmt 64 ${IMAGES}/good.elf)
cli_test(lbr_fmt_matching 5 "^A" ${SK} run --cpu-model broadwell --lbr-fmt 4 ${IMAGES}/good.elf)
cli_test(lbr_fmt_kvm 69 "(lbr-fmt|kvm)" ${SK} run --accel kvm --lbr-fmt 5 ${IMAGES}/good.elf)
cli_test(cpu_model_kvm 64 "(cpu-model needs --accel emu|/dev/kvm)" ${SK} run --accel kvm --cpu-model skylake ${IMAGES}/good.elf)
cli_test(caps_guest_lbr 0 "guest-lbr +yes +--cpu-model skylake \\(default\\): PMU v4 \\(LBR_Frz freeze\\), LBR format 5, 32 entries. broadwell: PMU v3 \\(legacy freeze\\), LBR format 4, 16 entries"
         ${SK} caps)
# The guest-LBR life-cycle counters in --stats: test_lbr creates the event once; test_pmu
# takes two PMIs (one vector, one NMI; a masked overflow delivers none).
cli_test(stats_lbr_event 0 "lbr_event_creations +1"
         ${SK} run --quiet --stats ${SOFTKVM_GUEST_DIR}/test_lbr.elf)
cli_test(stats_pmis 0 "pmis +2" ${SK} run --quiet --stats ${SOFTKVM_GUEST_DIR}/test_pmu.elf)

# softkvm profile --lbr (docs/lbr.md "Profiling a guest from the host"): each bad input its
# own message and status, then the profile of the lfsr demo guest.
set(LFSR ${SOFTKVM_GUEST_DIR}/lfsr.elf)
cli_test(profile_help 0 "--period" ${SK} profile --help)
cli_test(profile_needs_lbr 64 "--lbr \\(the branch stack\\) is the only mode" ${SK} profile ${LFSR})
cli_test(profile_period_zero 64 "--period 0: the period is at least one instruction"
         ${SK} profile --lbr --period 0 ${LFSR})
cli_test(profile_period_not_numeric 64 "--period '1e3': not a whole number"
         ${SK} profile --lbr --period 1e3 ${LFSR})
cli_test(profile_period_negative 64 "--period '-5': not a whole number"
         ${SK} profile --lbr --period=-5 ${LFSR})
cli_test(profile_top_not_numeric 64 "--top 'all': not a whole number"
         ${SK} profile --lbr --top all ${LFSR})
cli_test(profile_symbols_not_elf_or_map 65 "neither an ELF file nor a System.map \\(line 1 is not"
         ${SK} profile --lbr --symbols ${CMAKE_CURRENT_SOURCE_DIR}/expect.sh ${LFSR})
cli_test(profile_symbols_missing 66 "--symbols .*nope.map: No such file"
         ${SK} profile --lbr --symbols ${IMAGES}/nope.map ${LFSR})
cli_test(profile_symbols_elf_without_symtab 65 "an ELF file without function symbols"
         ${SK} profile --lbr --symbols ${IMAGES}/good.elf ${LFSR})
cli_test(profile_cpu_model_unknown 64 "softkvm profile: --cpu-model pentium: unknown model"
         ${SK} profile --lbr --cpu-model pentium ${LFSR})
cli_test(profile_lbr_fmt_mismatch 64 "softkvm profile: --lbr-fmt 4 does not match the skylake"
         ${SK} profile --lbr --lbr-fmt 4 ${LFSR})
cli_test(profile_json_and_folded 64 "--json and --folded exclude each other"
         ${SK} profile --lbr --json --folded ${LFSR})
cli_test(profile_kvm 69 "softkvm profile: (--lbr on --accel kvm needs the host's LBR unit|--accel kvm:)"
         ${SK} profile --lbr --accel kvm ${LFSR})
cli_test(profile_missing_image 66 "No such file" ${SK} profile --lbr ${IMAGES}/nope.elf)
# The guest options are `run`'s (cli/guest_options.h): an image or --kernel, --engine.
cli_test(profile_needs_guest 64 "softkvm profile: give either a multiboot image or --kernel FILE$"
         ${SK} profile --lbr)
cli_test(profile_image_and_kernel 64 "give either a multiboot image or --kernel FILE, not both"
         ${SK} profile --lbr --kernel ${LFSR} ${LFSR})
cli_test(profile_append_twice 64 "--append: At Most 1"
         ${SK} profile --lbr --append a --append b --kernel ${LFSR})
cli_test(profile_engine_unknown 64 "softkvm profile: --engine jit: unknown engine"
         ${SK} profile --lbr --engine jit ${LFSR})
cli_test(profile_kernel_multiboot 0 "^ +[0-9.]+%  lfsr_run\\+0x"
         ${SK} profile --lbr --quiet --top 3 --kernel ${LFSR})
cli_test(profile_engine_interp 0 "^ +[0-9.]+%  lfsr_run\\+0x"
         ${SK} profile --lbr --quiet --top 3 --engine interp ${LFSR})
# The table: the workload's hottest pair is its loop's back edge.
cli_test(profile_table 0 "^ +[0-9.]+%  lfsr_run\\+0x[0-9a-f]+ +lfsr_run\\+0x"
         ${SK} profile --lbr --quiet --top 3 ${LFSR})
cli_test(profile_json 0 "\"period_unit\": \"instructions\""
         ${SK} profile --lbr --quiet --json --period 50021 ${LFSR})
cli_test(profile_folded 0 "^lfsr_run.func_b [0-9]+$" ${SK} profile --lbr --quiet --folded ${LFSR})
cli_test(profile_guest_status 124 "instruction limit|instruction-limit"
         ${SK} profile --lbr --quiet --max-insns 100000 ${LFSR})
cli_test(profile_broadwell 0 "lfsr_run" ${SK} profile --lbr --quiet --cpu-model broadwell ${LFSR})
foreach(mode determinism symbols agree engines)
  add_test(NAME cli.profile_${mode}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lbr_profile.sh ${mode} ${SK} ${SOFTKVM_GUEST_DIR})
endforeach()
add_test(NAME cli.lbr_fmt_kvm_host COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lbr_profile.sh kvm ${SK} ${IMAGES})
set_tests_properties(cli.lbr_fmt_kvm_host PROPERTIES SKIP_RETURN_CODE 77)
