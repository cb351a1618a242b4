// The device and agent-token endpoints the dashboard calls.

import { api, enc } from './api';
import type { AgentToken, CreatedAgentToken, Device, DeviceUpdate, HardwareDevice } from './devices';
import type { LogEntry } from './devicesLogs';

export const loadDevices = () => api.get<Device[]>('/api/all_deployment_infos');

export const loadDevice = (id: string) => api.get<Device>(`/api/deployment_info/${enc(id)}`);

/** Changes the fields present in `update` (null clears name, location or notes). */
export const updateDevice = (id: string, update: DeviceUpdate) =>
	api.patch<Device>(`/api/deployment_info/${enc(id)}`, update);

/** Every hardware identity, last seen first, linked to a device or not. */
export const loadHardwareDevices = () => api.get<HardwareDevice[]>('/api/hardware_device');

export const deleteDevice = (id: string) => api.delete<null>(`/api/deployment_info/${enc(id)}`);

export const loadErrorLogs = (id: string) =>
	api.get<LogEntry[]>(`/api/deployment_info/${enc(id)}/error_logs`);

export const loadAgentTokens = () => api.get<AgentToken[]>('/api/agent_tokens');

/** Creates a token; its value is in this answer only. */
export const createAgentToken = (name: string, configId: string | null) =>
	api.post<CreatedAgentToken>('/api/agent_tokens', configId ? { name, config_id: configId } : { name });

export const revokeAgentToken = (id: string) => api.delete<AgentToken>(`/api/agent_tokens/${enc(id)}`);
