package agent

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
	"github.com/iadsafe/iad-agent/agent/migrate"
	"github.com/iadsafe/iad-agent/agent/transfer"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

// Errors the operation engine itself produces.
var (
	// ErrBusy reports an operation requested while another runs.
	ErrBusy = errors.New("agent: another operation is running")
	// ErrTrialRunning reports an upgrade requested while the running
	// software is an uncommitted trial: the only other bank is the last
	// known-good software, which must not be overwritten.
	ErrTrialRunning = errors.New("agent: running software is an uncommitted trial; wait for commit or revert first")
	// ErrInterrupted reports an operation cut short by a restart.
	ErrInterrupted = errors.New("agent: interrupted by a restart")
	// ErrResetRequested is returned by Run when a reset operation asks the
	// process to restart; the caller performs the reset (see ResetAction).
	ErrResetRequested = errors.New("agent: reset requested")
)

// failCauses maps sentinel errors to iadOpFailCause, most specific first.
var failCauses = []struct {
	err   error
	cause mib.FailCause
}{
	{ErrBusy, mib.FailBusy},
	{ErrTrialRunning, mib.FailBusy},
	{ErrInterrupted, mib.FailInterrupted},
	{transfer.ErrTimeout, mib.FailTimeout},
	{transfer.ErrUnreachable, mib.FailServerUnreachable},
	{transfer.ErrNotFound, mib.FailFileNotFound},
	{transfer.ErrAuth, mib.FailAuthFailed},
	{transfer.ErrAccessDenied, mib.FailAccessDenied},
	{transfer.ErrProtocol, mib.FailTransferError},
	{transfer.ErrShort, mib.FailTransferError},
	{transfer.ErrNoSpace, mib.FailNoSpace},
	{transfer.ErrInvalid, mib.FailTransferError},
	{image.ErrUntrustedKey, mib.FailUntrustedKey},
	{image.ErrBadSignature, mib.FailSignatureInvalid},
	{image.ErrIncompatibleHardware, mib.FailImageIncompatible},
	{image.ErrUnsupportedFormat, mib.FailImageIncompatible},
	{image.ErrTooLarge, mib.FailNoSpace},
	{image.ErrBadMagic, mib.FailImageCorrupt},
	{image.ErrBadHeader, mib.FailImageCorrupt},
	{image.ErrTruncated, mib.FailImageCorrupt},
	{image.ErrHashMismatch, mib.FailImageCorrupt},
	{bank.ErrNoSpace, mib.FailNoSpace},
	{bank.ErrWrite, mib.FailFlashWriteError},
	{bank.ErrVerify, mib.FailFlashWriteError},
	{bank.ErrNoFallback, mib.FailNoFallback},
	{bank.ErrSlotBusy, mib.FailBusy},
	{bank.ErrBusy, mib.FailBusy},
	{bank.ErrSizeMismatch, mib.FailImageCorrupt},
	{iadconfig.ErrTooNew, mib.FailConfigTooNew},
	{iadconfig.ErrMajorMismatch, mib.FailConfigMajorMismatch},
	{iadconfig.ErrConvert, mib.FailConfigConvertFailed},
	{iadconfig.ErrInvalid, mib.FailConfigInvalid},
	{iadconfig.ErrUnknownFormat, mib.FailConfigInvalid},
	{migrate.ErrReload, mib.FailApplyFailed},
	{migrate.ErrApply, mib.FailApplyFailed},
	{backupcrypt.ErrNotEncrypted, mib.FailConfigInvalid},
	{backupcrypt.ErrWrongKey, mib.FailConfigInvalid},
	{backupcrypt.ErrAuth, mib.FailConfigInvalid},
	{backupcrypt.ErrTruncated, mib.FailConfigInvalid},
	{backupcrypt.ErrUnsupported, mib.FailConfigInvalid},
	{ErrNoConfigKey, mib.FailConfigInvalid},
	{config.ErrTooLarge, mib.FailNoSpace},
	{config.ErrCorrupt, mib.FailConfigInvalid},
	{config.ErrManifest, mib.FailConfigInvalid},
	{config.ErrUnsafe, mib.FailConfigInvalid},
	{context.DeadlineExceeded, mib.FailTimeout},
	{context.Canceled, mib.FailInterrupted},
}

// classify returns the fail cause for err and the text for iadOpFailText.
func classify(err error) (mib.FailCause, string) {
	if err == nil {
		return mib.FailNone, ""
	}
	cause := mib.FailInternalError
	for _, fc := range failCauses {
		if errors.Is(err, fc.err) {
			cause = fc.cause
			break
		}
	}
	// A list of problems is cut at a problem boundary, saying how many
	// were left out (the log has them all).
	var inv *migrate.InvalidError
	if errors.As(err, &inv) {
		return cause, truncateText(inv.Summary(255), 255)
	}
	return cause, truncateText(err.Error(), 255)
}

// truncateText cuts s to at most n bytes on a UTF-8 boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
