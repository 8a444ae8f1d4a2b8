# gild's bill of materials on a Windows builder, run by the template's
# `powershell` provisioner last (after the final restart): one tab-separated
# line per installed hotfix, Windows feature and program
# (`kind<TAB>name<TAB>version<TAB>`), after a header naming the time, in
# C:\gild\bom.tsv (UTF-8, no byte-order mark). The template's `file`
# provisioner downloads it and bake.yml turns it into gild.bom/1 JSON
# (buildspecs/bootstrap/bom.py). It stays on the image.
#
# What each source returns (Microsoft Learn):
# - Get-HotFix reads Win32_QuickFixEngineering: the updates Component Based
#   Servicing installed (the monthly cumulative and servicing-stack updates,
#   HotFixID "KB5044281"); updates installed by Windows Installer are not in
#   it, they are programs below. Kind `hotfix`, the id only.
# - Get-WindowsFeature (ServerManager, Windows Server only): every role,
#   role service and feature with its Installed state; the installed ones'
#   Name ("Web-Server"). Kind `feature`.
# - HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\* and its
#   WOW6432Node twin (32-bit programs): what Programs and Features lists,
#   DisplayName and DisplayVersion (a program's registry key sets both).
#   Keys without a DisplayName are not listed there, nor here. Kind
#   `program`, with its version when it has one.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$path = 'C:\gild\bom.tsv'
# One field of a line: no tab, newline or other control character.
function Format-Field($Value) {
    if ($null -eq $Value) { return '' }
    return (([string]$Value) -replace '[\x00-\x1f\x7f]', ' ').Trim()
}

$lines = New-Object 'System.Collections.Generic.List[string]'
foreach ($fix in @(Get-HotFix)) {
    $id = Format-Field $fix.HotFixID
    if ($id) { $lines.Add("hotfix`t$id`t`t") }
}
foreach ($feature in @(Get-WindowsFeature | Where-Object { $_.Installed })) {
    $name = Format-Field $feature.Name
    if ($name) { $lines.Add("feature`t$name`t`t") }
}
$keys = @(
    'HKLM:\Software\Microsoft\Windows\CurrentVersion\Uninstall\*',
    'HKLM:\Software\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
)
foreach ($entry in @(Get-ItemProperty -Path $keys -ErrorAction SilentlyContinue)) {
    $name = Format-Field $entry.DisplayName
    if (-not $name) { continue }
    $lines.Add("program`t$name`t$(Format-Field $entry.DisplayVersion)`t")
}
if ($lines.Count -eq 0) { throw 'gild bom: nothing installed was found' }

$sorted = @($lines | Sort-Object -Unique)
$header = '# gild.bom raw: collected_at=' + [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ')
New-Item -ItemType Directory -Force -Path (Split-Path -Parent $path) | Out-Null
[IO.File]::WriteAllLines($path, [string[]](@($header) + $sorted), (New-Object System.Text.UTF8Encoding $false))
Write-Output "gild bom: $($sorted.Count) entries in $path"
