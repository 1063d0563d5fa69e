package xbstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// BinlogInfoFile is the path, in a mariabackup stream, of the file that
// records the binary log coordinates of the backup.
const BinlogInfoFile = "xtrabackup_binlog_info"

// ErrBinlogInfo is wrapped by every error of ParseBinlogInfo.
var ErrBinlogInfo = errors.New("bad xtrabackup_binlog_info")

// ParseBinlogInfo parses the content of xtrabackup_binlog_info: one line,
// tab separated, with the binary log file name, the position in it and,
// optionally, the GTID position. mariabackup 10.11 writes for example
// "mysql-bin.000001\t1505\t0-1-7\n"; the GTID may be empty, a
// comma-separated list of MariaDB GTIDs, or a MySQL GTID set (which
// XtraBackup may break over lines after its commas: line breaks are
// removed).
func ParseBinlogInfo(b []byte) (file string, pos uint64, gtid string, err error) {
	s := strings.TrimRight(string(b), " \t\r\n")
	fields := strings.SplitN(s, "\t", 3)
	if len(fields) < 2 {
		return "", 0, "", fmt.Errorf("%w: want file<TAB>position[<TAB>gtid], got %q", ErrBinlogInfo, truncate(s))
	}
	file = fields[0]
	if file == "" || strings.ContainsAny(file, " \r\n\x00") {
		return "", 0, "", fmt.Errorf("%w: bad binary log file name %q", ErrBinlogInfo, truncate(file))
	}
	pos, perr := strconv.ParseUint(fields[1], 10, 64)
	if perr != nil {
		return "", 0, "", fmt.Errorf("%w: bad position %q", ErrBinlogInfo, truncate(fields[1]))
	}
	if len(fields) == 3 {
		gtid = strings.NewReplacer("\r", "", "\n", "").Replace(fields[2])
		gtid = strings.TrimSpace(gtid)
		if strings.ContainsAny(gtid, "\t\x00") {
			return "", 0, "", fmt.Errorf("%w: bad GTID position %q", ErrBinlogInfo, truncate(gtid))
		}
	}
	return file, pos, gtid, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
