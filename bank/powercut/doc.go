// Package powercut holds the host-side power-cut proof of the bank
// backends. Its test runs the writer program (./writer, built from the
// bank packages) against a bank configuration, has it kill itself with
// SIGKILL at a uniformly random byte of a slot write, of a boot-state
// write (U-Boot environment copy), of the commit, or of the boot
// decision, then restarts it and checks that it boots a bank whose
// content hashes to the image that was installed there, and that
// Debian's fw_printenv reads the environment.
//
// Nothing here is used by the agent; the cut hook exists only as a flag
// of the writer test program, never in the packages it exercises.
package powercut
