// Package iadconfig is the configuration model of an Integrated Access
// Device: what its configuration files mean, which format versions exist,
// how a configuration is converted from one version to the next, and how
// it is validated before the device may use it.
//
// A configuration is a directory of model files in a line-oriented text
// format (docs/config-format.md describes it for the device's other
// software):
//
//	# comment lines before format-version are kept through conversions
//	format-version = 2
//	line.1.number = 2001
//	line.1.display-name = "  padded name  "
//
// Every model file starts with format-version; defaults.conf's
// format-version is the format of the whole configuration, and every other
// model file must declare the same. A value is the rest of the line after
// the first "=", trimmed; a value that starts with a double quote is a Go
// string literal, so any text (leading spaces, control characters) can be
// written. Keys are unique in a file. Files the model does not know are
// not its business: they travel with the configuration unchanged.
//
// Format versions carry an OpenWrt-style compat number major.minor (see
// Compat). A Registry holds the formats and the converters between
// consecutive versions; each converter is a pure function from one Doc
// to a new Doc. Converting across a major version needs force, and a
// configuration newer than the target is never converted down.
//
// The package does no I/O beyond what its callers hand it, and it must
// never put a secret value (SIP passwords) into an error, a Problem or a
// log record: Field.Secret marks them, Doc redacts them in String and
// LogValue, and checks of secret values never quote them.
package iadconfig

import "errors"

// Errors; match them with errors.Is.
var (
	// ErrInvalid means the configuration breaks the model's rules; the
	// error is a Problems (or a *SyntaxError) listing every finding.
	ErrInvalid = errors.New("iadconfig: invalid configuration")
	// ErrUnknownFormat means the configuration's format version is not
	// one the registry knows, or cannot be determined.
	ErrUnknownFormat = errors.New("iadconfig: unknown configuration format")
	// ErrTooNew means the configuration's format is newer than the one
	// wanted; it is never converted down.
	ErrTooNew = errors.New("iadconfig: configuration format newer than the running software's")
	// ErrMajorMismatch means the conversion would cross a major compat
	// version and was not forced.
	ErrMajorMismatch = errors.New("iadconfig: configuration format differs in major version")
	// ErrConvert means a converter could not convert the configuration.
	ErrConvert = errors.New("iadconfig: conversion failed")
)
