package setup

import (
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/block"
)

// The slots whose write-back Install starts early (bank.RangeSyncer).
var (
	_ bank.RangeSyncer = (*bank.File)(nil)
	_ bank.RangeSyncer = (*block.Device)(nil)
)
