// Package transfer moves files between the user's machine and a sandbox
// through any exec (sandbox.Runner): cp specs, tar streams written from
// local trees and hostile tar streams extracted into them, and single-file
// reads, writes and listings. Everything that comes out of a sandbox is
// untrusted: names, links, modes and sizes are checked before anything
// reaches the local disk.
package transfer
