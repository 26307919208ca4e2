package seccomp

import (
	"fmt"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// build creates the libseccomp filter for p in memory. The caller releases
// it.
func (p *profile) build() (_ *libseccomp.ScmpFilter, retErr error) {
	// NewFilter turns the TSYNC attribute on.
	f, err := libseccomp.NewFilter(p.defaultAction)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp.defaultAction: create filter: %w", err)
	}
	defer func() {
		if retErr != nil {
			f.Release()
		}
	}()

	// no_new_privs is process.noNewPrivileges' business, not seccomp's.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("linux.seccomp: clear the filter's no_new_privs attribute: %w", err)
	}
	// A binary search on the syscall number instead of a list of
	// compares: docker's profile allows some 350 calls, which each of the
	// container's syscalls (and the kernel's action cache, built when
	// the filter is loaded: about 1 ms of the start) walked in order.
	// libseccomp before 2.5 lacks it and builds the list.
	_ = f.SetOptimize(2)
	if err := p.setFlags(f); err != nil {
		return nil, err
	}
	for _, a := range p.arches {
		if err := f.AddArch(a.arch); err != nil {
			return nil, fmt.Errorf("%s: add architecture %s to the filter: %w", a.field, a.arch, err)
		}
	}
	for _, r := range p.rules {
		if err := p.addRule(f, r); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (p *profile) setFlags(f *libseccomp.ScmpFilter) error {
	if p.log {
		if err := f.SetLogBit(true); err != nil {
			return fmt.Errorf("linux.seccomp.flags: SECCOMP_FILTER_FLAG_LOG with libseccomp %s: %w", libseccompVersion(), err)
		}
	}
	if p.specAllow {
		if err := f.SetSSB(true); err != nil {
			return fmt.Errorf("linux.seccomp.flags: SECCOMP_FILTER_FLAG_SPEC_ALLOW with libseccomp %s: %w", libseccompVersion(), err)
		}
	}
	if p.waitKill {
		if err := f.SetWaitKill(true); err != nil {
			return fmt.Errorf("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV with libseccomp %s: %w", libseccompVersion(), err)
		}
	}
	return nil
}

func (p *profile) addRule(f *libseccomp.ScmpFilter, r rule) error {
	// libseccomp refuses a rule whose action is the filter's default
	// action; such a rule changes nothing anyway.
	if r.action == p.defaultAction {
		return nil
	}
	for _, n := range r.names {
		if !n.native {
			// Known to libseccomp on another of the filter's
			// architectures only; rules are added by native
			// number, so there is nothing to add here.
			continue
		}
		var err error
		switch {
		case len(r.conds) == 0:
			err = f.AddRule(n.call, r.action)
		case r.split:
			for _, c := range r.conds {
				if err = f.AddRuleConditional(n.call, r.action, []libseccomp.ScmpCondition{c}); err != nil {
					break
				}
			}
		default:
			err = f.AddRuleConditional(n.call, r.action, r.conds)
		}
		if err != nil {
			return fmt.Errorf("%s: add rule for syscall %q: %w", n.field, n.name, err)
		}
	}
	return nil
}
