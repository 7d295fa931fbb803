import { defineServiceConfig } from '../src/service-config.js';

export default defineServiceConfig('payments');
