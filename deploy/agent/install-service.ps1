<#
.SYNOPSIS
    Installs the Windows Node Doctor agent as a Windows service on a node that does not run
    HostProcess containers (the same way kubelet and kube-proxy are installed: sc.exe or nssm).

.EXAMPLE
    .\install-service.ps1 -Dashboard https://doctor.example.com -Cluster prod-eu -Token (Get-Content .\token.txt) -Wheelhouse .\wheelhouse
    .\install-service.ps1 -Dashboard https://doctor.example.com -Cluster prod-eu -TokenFile C:\k\node-doctor-token -Nssm C:\k\nssm.exe
#>
param(
    [Parameter(Mandatory = $true)] [string] $Dashboard,
    [Parameter(Mandatory = $true)] [string] $Cluster,
    [string] $Token = "",
    [string] $TokenFile = "C:\ProgramData\windows-node-doctor\token",
    [string] $Python = "C:\Python311\python.exe",
    # A folder holding the agent's wheels and its dependencies' win_amd64 wheels (deploy/agent/README.md).
    [string] $Wheelhouse = "",
    [string] $ConfigDir = "C:\ProgramData\windows-node-doctor",
    [string] $ServiceName = "node-doctor-agent",
    [string] $Nssm = "C:\k\nssm.exe"
)
$ErrorActionPreference = "Stop"

New-Item -ItemType Directory -Force -Path $ConfigDir | Out-Null
if ($Token) {
    Set-Content -Path $TokenFile -Value $Token -NoNewline -Encoding ascii
    # Only SYSTEM and Administrators may read the token.
    icacls $TokenFile /inheritance:r /grant:r "SYSTEM:(R)" "Administrators:(F)" | Out-Null
}
if ($Wheelhouse) {
    & $Python -m pip install --no-index --find-links $Wheelhouse windows-node-doctor-agent
    if ($LASTEXITCODE -ne 0) { throw "pip could not install the agent from $Wheelhouse" }
}

$config = Join-Path $ConfigDir "agent.toml"
@"
dashboard = "$Dashboard"
cluster = "$Cluster"
node = "$((hostname).ToLower())"
token_file = '$TokenFile'
state_dir = '$ConfigDir'
interval = 60
"@ | Set-Content -Path $config -Encoding ascii

$arguments = "-m agent --config `"$config`""
if (Get-Service $ServiceName -ErrorAction SilentlyContinue) {
    Stop-Service $ServiceName -Force
    sc.exe delete $ServiceName | Out-Null
    Start-Sleep -Seconds 2
}
if (-not (Test-Path $Nssm)) { throw "nssm.exe not found at $Nssm (download it from https://nssm.cc and pass -Nssm)" }
& $Nssm install $ServiceName $Python
& $Nssm set $ServiceName AppParameters $arguments
& $Nssm set $ServiceName AppDirectory $ConfigDir
& $Nssm set $ServiceName AppStdout (Join-Path $ConfigDir "agent.log")
& $Nssm set $ServiceName AppStderr (Join-Path $ConfigDir "agent.log")
& $Nssm set $ServiceName DisplayName "Windows Node Doctor agent"
& $Nssm set $ServiceName Start SERVICE_AUTO_START
sc.exe failure $ServiceName reset= 86400 actions= restart/10000/restart/30000/restart/60000 | Out-Null
Start-Service $ServiceName
Get-Service $ServiceName
