// Package cross keeps the device builds in check: its test cross-builds
// the agent for linux/arm (GOARM=7) the way `make cross` does and fails
// when the binary outgrows the budget the Makefile states
// (ARM_AGENT_BUDGET). A device's flash bank is small and every upgrade
// streams the whole binary, so growth must be a decision, not a drift.
//
// It holds no code that ships; it must never relax the budget itself.
package cross
