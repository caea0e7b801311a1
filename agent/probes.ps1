#Requires -Version 5.1
<#
.SYNOPSIS
    Windows Node Doctor probes: every probe due this cycle, in this one process, into one JSON file.

.DESCRIPTION
    Run as
        powershell.exe -NoProfile -NonInteractive -File probes.ps1 -Out <file> -Probes a,b,c -Budget <seconds>
    (no -EncodedCommand, no execution-policy override: sign this file where policy requires it).

    The file written is UTF-8 (Windows PowerShell 5.1 adds a BOM), one JSON document:
        {"format":"node-probes/v1","powershell":"5.1.17763.1","language":"FullLanguage","hns":"HostNetworkingService",
         "probes":[
        {"id":"os.version","output":"...","error":null,"ms":12,"truncated":false,"timed_out":false},
        ...
        {"end":true,"ms":812}]}
    One probe per line, written as soon as it finishes: when the agent has to end this process
    (a probe hung past the budget), every finished probe is still on disk, and the agent
    reports the rest as timed out. HNS probes run last, so a hung Host Network Service costs
    nothing else.

    Works in Windows PowerShell 5.1, PowerShell 7 and Constrained Language Mode: cmdlets,
    property access and the core types only (no Add-Type, no console encoding, no .NET static
    calls). HNS objects come from the built-in HostNetworkingService module when it is there,
    else from -HnsModule (hns.psm1; hns.v2.psm1 uses Add-Type and does not load under
    Constrained Language Mode), else from hnsdiag.exe.

    Every probe returns text; JSON probes compress their objects to the fields the parsers read.
#>
param(
    [Parameter(Mandatory = $true)][string]$Out,
    [string]$Probes = '',
    [int]$Budget = 120,
    [string]$HnsModule = '',
    [int]$MaxChars = 16777216
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# Services collectlogs.ps1 queries, plus the CNI daemons of AKS, EKS, kubeadm and RKE2 nodes.
$ServiceNames = @('kubelet', 'kube-proxy', 'kubeproxy', 'flanneld', 'containerd', 'docker', 'hns', 'vmcompute',
    'vfpext', 'csi-proxy', 'windows_exporter', 'CalicoNode', 'CalicoFelix', 'rke2', 'azure-vnet')
$ProcessNames = @('kubelet.exe', 'kube-proxy.exe', 'flanneld.exe', 'containerd.exe', 'dockerd.exe', 'csi-proxy.exe',
    'calico-node.exe', 'rke2.exe', 'azure-vnet.exe')
# Machine environment variables the checks read; nothing else leaves the node.
$EnvAllowList = @('HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'KUBE_NETWORK', 'CONTAINER_RUNTIME_ENDPOINT',
    'KUBECONFIG', 'NODE_NAME', 'CNI_BIN_PATH', 'CNI_CONFIG_PATH', 'CALICO_NETWORKING_BACKEND')

function ConvertTo-Compact($Value) { ConvertTo-Json -InputObject $Value -Depth 8 -Compress }
function ConvertTo-CompactList($Items) { ConvertTo-Json -InputObject @($Items) -Depth 8 -Compress }

function Invoke-Native([string]$Program, [string[]]$Arguments) {
    # Windows PowerShell turns a native program's stderr into terminating errors under 'Stop'.
    $ErrorActionPreference = 'Continue'
    if (-not (Get-Command $Program -ErrorAction SilentlyContinue)) { throw "$Program is not installed" }
    $text = (& $Program @Arguments 2>$null) -join "`n"
    if ($LASTEXITCODE) { throw "$Program exited with status $LASTEXITCODE" }
    $text
}

function Get-Events([string]$Log, [int]$Days, [int]$Max) {
    # Level (a number) rather than LevelDisplayName, which is localized.
    @(Get-WinEvent -FilterHashtable @{ LogName = $Log; StartTime = (Get-Date).AddDays(-$Days) } -MaxEvents $Max `
            -ErrorAction SilentlyContinue |
            Select-Object @{ n = 'TimeCreated'; e = { $_.TimeCreated.ToUniversalTime().ToString('o') } },
            'Level', 'Id', 'ProviderName', 'LogName', 'Message')
}

# Where HNS objects come from on this node: the name is written into the document.
$HnsSource = 'hnsdiag'
if (Get-Command Get-HnsNetwork -ErrorAction SilentlyContinue) {
    $HnsSource = 'HostNetworkingService'
}
elseif ($HnsModule) {
    try { Import-Module $HnsModule -DisableNameChecking; $HnsSource = $HnsModule }
    catch { $HnsSource = "hnsdiag (Import-Module $HnsModule failed: $_)" }
}

function Get-HnsJson([string]$Kind, [string[]]$Fields) {
    if ($HnsSource -like 'hnsdiag*') {
        # hnsdiag prints each object's JSON in turn; the parsers read that as it is.
        $name = @{ networks = 'networks'; endpoints = 'endpoints'; namespaces = 'namespaces'; policies = 'loadbalancers' }[$Kind]
        return Invoke-Native 'hnsdiag.exe' @('list', $name, '-d')
    }
    $items = switch ($Kind) {
        'networks' { Get-HnsNetwork }
        'endpoints' { Get-HnsEndpoint }
        'namespaces' { if (Get-Command Get-HnsNamespace -ErrorAction SilentlyContinue) { Get-HnsNamespace } }
        'policies' {
            # HCN load balancers where hns.v2 is loaded, else the v1 policy lists.
            if (Get-Command Get-HnsLoadBalancer -ErrorAction SilentlyContinue) { Get-HnsLoadBalancer } else { Get-HnsPolicyList }
        }
    }
    @($items) | Select-Object -Property $Fields | ConvertTo-CompactList
}

# Probe id -> what it returns (text). Ids are part of node-report/v1: never rename one.
# Slow-changing probes first, HNS last (see above).
$Table = [ordered]@{
    'os.version'        = {
        Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' |
            Select-Object 'ProductName', 'EditionID', 'DisplayVersion', 'ReleaseId', 'CurrentBuild', 'UBR' | ConvertTo-Compact
    }
    'os.hotfixes'       = {
        Get-HotFix | Select-Object 'HotFixID', 'Description',
        @{ n = 'InstalledOn'; e = { if ($_.InstalledOn) { $_.InstalledOn.ToString('yyyy-MM-dd') } } } |
            ConvertTo-CompactList
    }
    'computer.info'     = {
        Get-CimInstance Win32_ComputerSystem | Select-Object 'Manufacturer', 'Model', 'HypervisorPresent' | ConvertTo-Compact
    }
    'bitlocker'         = {
        # The BitLocker module is absent unless the feature is installed: no volumes then.
        if (-not (Get-Command Get-BitLockerVolume -ErrorAction SilentlyContinue)) { return '[]' }
        Get-BitLockerVolume | Select-Object 'MountPoint',
        @{ n = 'ProtectionStatus'; e = { "$($_.ProtectionStatus)" } }, @{ n = 'VolumeStatus'; e = { "$($_.VolumeStatus)" } } |
            ConvertTo-CompactList
    }
    'env.machine'       = {
        $all = Get-ItemProperty 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
        $kept = @{}
        foreach ($name in $EnvAllowList) { if ($null -ne $all.$name) { $kept[$name] = "$($all.$name)" } }
        ConvertTo-Compact $kept
    }
    'services'          = {
        Get-CimInstance Win32_Service | Where-Object { $ServiceNames -contains $_.Name } | ForEach-Object {
            # nssm keeps the real program and its arguments under Services\<name>\Parameters.
            $p = Get-ItemProperty "HKLM:\SYSTEM\CurrentControlSet\Services\$($_.Name)\Parameters" -ErrorAction SilentlyContinue
            [pscustomobject]@{ Name = $_.Name; State = $_.State; StartMode = $_.StartMode; PathName = $_.PathName
                Application = $p.Application; AppParameters = $p.AppParameters }
        } | ConvertTo-CompactList
    }
    'processes'         = {
        Get-CimInstance Win32_Process | Where-Object { $ProcessNames -contains $_.Name } |
            Select-Object 'Name', 'ProcessId', 'CommandLine' | ConvertTo-CompactList
    }
    'images'            = { Invoke-Native 'crictl.exe' @('images', '-o', 'json') }
    'net.adapters'      = {
        Get-NetAdapter | Select-Object 'Name', 'InterfaceDescription', 'ifIndex', 'Status', 'MacAddress', 'LinkSpeed' | ConvertTo-CompactList
    }
    'net.ipconfig'      = {
        Get-NetIPConfiguration -AllCompartments -Detailed | ForEach-Object {
            [pscustomobject]@{ InterfaceAlias = $_.InterfaceAlias; InterfaceIndex = $_.InterfaceIndex
                InterfaceDescription = $_.InterfaceDescription; CompartmentId = $_.CompartmentId
                MacAddress = $_.NetAdapter.MacAddress
                IPv4Address = @($_.IPv4Address | ForEach-Object { $_.IPAddress })
                IPv6Address = @(@($_.IPv6Address) + @($_.IPv6LinkLocalAddress) | ForEach-Object { $_.IPAddress })
                IPv4DefaultGateway = @($_.IPv4DefaultGateway | ForEach-Object { $_.NextHop })
                DNSServer = @($_.DNSServer | ForEach-Object { $_.ServerAddresses }) }
        } | ConvertTo-CompactList
    }
    'net.ipaddresses'   = {
        Get-NetIPAddress -IncludeAllCompartments |
            Select-Object 'InterfaceAlias', 'InterfaceIndex', 'IPAddress', 'PrefixLength', @{ n = 'AddressFamily'; e = { "$($_.AddressFamily)" } } |
            ConvertTo-CompactList
    }
    'net.routes'        = {
        Get-NetRoute -IncludeAllCompartments |
            Select-Object 'DestinationPrefix', 'NextHop', 'InterfaceAlias', 'InterfaceIndex', 'RouteMetric', 'CompartmentId' |
            ConvertTo-CompactList
    }
    'net.interfaces'    = {
        Get-NetIPInterface -IncludeAllCompartments |
            Select-Object 'InterfaceAlias', 'InterfaceIndex', @{ n = 'AddressFamily'; e = { "$($_.AddressFamily)" } }, 'NlMtu',
            @{ n = 'ConnectionState'; e = { "$($_.ConnectionState)" } }, 'CompartmentId' | ConvertTo-CompactList
    }
    'ports.dynamic'     = {
        Get-NetTCPSetting | Where-Object { $_.DynamicPortRangeStartPort } |
            Select-Object 'SettingName', 'DynamicPortRangeStartPort', 'DynamicPortRangeNumberOfPorts' | ConvertTo-CompactList
    }
    'ports.dynamic.udp' = {
        Get-NetUDPSetting | Select-Object 'DynamicPortRangeStartPort', 'DynamicPortRangeNumberOfPorts' | ConvertTo-CompactList
    }
    # No cmdlet lists excluded ranges; netsh prints a table of numbers, read by position, not by its words.
    'ports.excluded'    = { Invoke-Native 'netsh.exe' @('int', 'ipv4', 'show', 'excludedportrange', 'protocol=tcp') }
    'ports.excluded.udp' = { Invoke-Native 'netsh.exe' @('int', 'ipv4', 'show', 'excludedportrange', 'protocol=udp') }
    'hyperv.events'     = {
        # Where CreateComputeSystem failures land (pause image and OS build mismatches).
        @(Get-Events 'Microsoft-Windows-Hyper-V-Compute-Admin' 7 100) +
        @(Get-Events 'Microsoft-Windows-Hyper-V-Compute-Operational' 1 100 | Where-Object { $_.Level -le 3 }) |
            ConvertTo-CompactList
    }
    'hns.events'        = {
        @(Get-Events 'Microsoft-Windows-Host-Network-Service-Admin' 7 50) +
        @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'Service Control Manager'; Id = 7031, 7034
                StartTime = (Get-Date).AddDays(-7) } -MaxEvents 50 -ErrorAction SilentlyContinue |
                Where-Object { $_.Message -match 'Host Network Service|hns' } |
                Select-Object @{ n = 'TimeCreated'; e = { $_.TimeCreated.ToUniversalTime().ToString('o') } }, 'Level', 'Id', 'Message') |
            ConvertTo-CompactList
    }
    'hns.networks'      = {
        Get-HnsJson 'networks' @('ID', 'Name', 'Type', 'Flags', 'ManagementIP', 'NetworkAdapterName', 'AddressPrefix',
            'Subnets', 'Ipams', 'Policies', 'SchemaVersion')
    }
    'hns.endpoints'     = {
        Get-HnsJson 'endpoints' @('ID', 'Name', 'State', 'MacAddress', 'IPAddress', 'IsRemoteEndpoint', 'VirtualNetwork',
            'VirtualNetworkName', 'Namespace', 'IpConfigurations', 'HostComputeNetwork', 'HostComputeNamespace', 'Flags')
    }
    'hns.policies'      = {
        Get-HnsJson 'policies' @('ID', 'FrontendVIPs', 'PortMappings', 'HostComputeEndpoints', 'SourceVIP', 'Flags',
            'Policies', 'References', 'IsApplied')
    }
    'hns.namespaces'    = { Get-HnsJson 'namespaces' @('ID', 'Type', 'IsDefault', 'ResourceList', 'Resources') }
    'hns.diag'          = { Invoke-Native 'hnsdiag.exe' @('list', 'all') }
}

# -- the runner: one line per probe, the budget checked before each ----------------------------------------

$wanted = @($Probes -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ })
$started = Get-Date
$header = [ordered]@{ format = 'node-probes/v1'; powershell = "$($PSVersionTable.PSVersion)"
    language = "$($ExecutionContext.SessionState.LanguageMode)"; hns = $HnsSource }
$text = ConvertTo-Compact $header
Set-Content -LiteralPath $Out -Value ($text.Substring(0, $text.Length - 1) + ',"probes":[') -Encoding UTF8

foreach ($id in @($Table.Keys)) {
    if ($wanted.Count -and $wanted -notcontains $id) { continue }
    $record = [ordered]@{ id = $id; output = ''; error = $null; ms = 0; truncated = $false; timed_out = $false }
    $begun = Get-Date
    if (($begun - $started).TotalSeconds -ge $Budget) {
        $record.error = "not run: the cycle's budget of $Budget s was used up"
        $record.timed_out = $true
    }
    else {
        try { $record.output = (@(& $Table[$id]) | ForEach-Object { "$_" }) -join "`n" }
        catch { $record.error = "$_" }
        if ($record.output.Length -gt $MaxChars) {
            $record.output = $record.output.Substring(0, $MaxChars)
            $record.truncated = $true
        }
        $record.ms = [int]((Get-Date) - $begun).TotalMilliseconds
    }
    Add-Content -LiteralPath $Out -Value ((ConvertTo-Compact $record) + ',') -Encoding UTF8
}
Add-Content -LiteralPath $Out -Value ('{"end":true,"ms":' + [int]((Get-Date) - $started).TotalMilliseconds + '}]}') -Encoding UTF8
