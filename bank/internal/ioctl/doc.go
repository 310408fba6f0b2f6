// Package ioctl issues ioctl(2) calls on an open device file for the bank
// backends (block, MTD, UBI). It only passes requests through; it never
// interprets a device.
package ioctl
