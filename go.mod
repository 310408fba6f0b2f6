module github.com/iadsafe/iad-agent

go 1.26.0

require github.com/pin/tftp/v3 v3.1.0

require (
	github.com/gosnmp/gosnmp v1.47.0 // indirect
	github.com/jlaffaye/ftp v0.2.4 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/net v0.0.0-20200202094626-16171245cfb2 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
