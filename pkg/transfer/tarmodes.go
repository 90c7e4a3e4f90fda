package transfer

// portableMode is the mode a file copied into a sandbox gets from a
// client on goos. NTFS has no Unix permissions: Go reports every file of
// a Windows client as 0666 (0444 with the read-only attribute) and every
// directory as 0777, which would make everything copied from Windows
// world-writable in the sandbox. Such a client's files become 0644 (0444
// read-only) and its directories 0755, as git checks files out. Nothing
// marks a Windows file executable: a script copied from Windows needs
// chmod +x (or sh script) in the sandbox. Unix clients keep their modes.
func portableMode(mode int64, dir bool, goos string) int64 {
	if goos != "windows" {
		return mode
	}
	switch {
	case dir:
		return 0o755
	case mode&0o200 == 0:
		return 0o444
	default:
		return 0o644
	}
}
