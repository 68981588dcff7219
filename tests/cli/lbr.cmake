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
cli_test(caps_guest_lbr 0 "guest-lbr +yes +--cpu-model skylake \\(default\\): LBR format 5, 32 entries"
         ${SK} caps)
# The guest-LBR life-cycle counters in --stats: test_lbr creates the event once; test_pmu
# takes two PMIs (one vector, one NMI; a masked overflow delivers none).
cli_test(stats_lbr_event 0 "lbr_event_creations +1"
         ${SK} run --quiet --stats ${SOFTKVM_GUEST_DIR}/test_lbr.elf)
cli_test(stats_pmis 0 "pmis +2" ${SK} run --quiet --stats ${SOFTKVM_GUEST_DIR}/test_pmu.elf)
